#!/usr/bin/env python3
"""make_model.py writes the tiny random Llama checkpoint of testdata/tiny-llama:
LlamaForCausalLM (hidden 128, 2 layers, 2 query heads and 1 KV head of 64,
MLP 256) with q/k/v/o biases, untied embeddings and llama3 RoPE scaling whose
original_max_position_embeddings (64) puts head_dim 64's frequencies in all
three of its regimes within a short prompt. The weights are seeded random
float32 values scaled so that the logits are spread out (greedy tokens with
clear margins), saved with Hugging Face's names; the tokenizer files are the
tiny Qwen3 model's (vocab 3,259).

    python3 make_model.py OUTDIR      (needs torch only)
"""
import json
import os
import shutil
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
QWEN = os.path.join(HERE, "..", "..", "tiny-qwen3")

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "attention_bias": True,
    "attention_dropout": 0.0,
    "bos_token_id": 3256,
    "eos_token_id": 3256,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 128,
    "initializer_range": 0.02,
    "intermediate_size": 256,
    "max_position_embeddings": 1024,
    "mlp_bias": False,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "num_key_value_heads": 1,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 64, "rope_type": "llama3"},
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 3259,
}


def tensors(c, g):
    h, d, inter = c["hidden_size"], c["head_dim"], c["intermediate_size"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d

    def lin(out, inp):
        return (torch.rand(out, inp, generator=g) * 2 - 1) * (3 / inp) ** 0.5

    def vec(n, lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    t = {"model.embed_tokens.weight": torch.randn(c["vocab_size"], h, generator=g),
         "model.norm.weight": vec(h, 0.8, 1.2),
         "lm_head.weight": lin(c["vocab_size"], h)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = vec(h, 0.8, 1.2)
        t[p + "post_attention_layernorm.weight"] = vec(h, 0.8, 1.2)
        for name, out, inp in [("q_proj", q, h), ("k_proj", kv, h), ("v_proj", kv, h), ("o_proj", h, q)]:
            t[p + f"self_attn.{name}.weight"] = lin(out, inp)
            t[p + f"self_attn.{name}.bias"] = vec(out, -0.5, 0.5)
        t[p + "mlp.gate_proj.weight"] = lin(inter, h)
        t[p + "mlp.up_proj.weight"] = lin(inter, h)
        t[p + "mlp.down_proj.weight"] = lin(h, inter)
    return t


def write_safetensors(path, t):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    blobs = []
    for name in sorted(t):
        b = t[name].to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t[name].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 make_model.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors(CONFIG, torch.Generator().manual_seed(2024)))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(QWEN, name), os.path.join(out, name))
    print("wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
