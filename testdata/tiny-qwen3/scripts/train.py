#!/usr/bin/env python3
"""train.py trains the tiny Qwen3 model that Loom ships for tests and `make run`,
and with -arch llama the tiny Llama of testdata/tiny-llama.

A Qwen3-architecture model (hidden 128, 4 layers, 2 query heads and 1 KV
head of size 64, MLP 344, tied embeddings) over the byte-level BPE
vocabulary train_tokenizer.js writes (3,259 tokens; <|endoftext|> separates
documents and is the BOS and EOS). The model is qwen3.py's plain-PyTorch
Qwen3 (no transformers needed), or ../../tiny-llama/scripts/llama.py's
Llama with the configuration llama.config gives, trained for a fixed
wall-clock budget on the ids encode.js writes, and saved in float32 as a
Hugging Face directory: config.json, generation_config.json,
model.safetensors, and the tokenizer files copied beside them.

    python3 train.py -tokens tokens.bin -tokenizer TOKDIR -out DIR [-arch qwen3|llama] [-seconds 900] [-device cpu] [-seq 256] [-batch 8]
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import time

import torch

from qwen3 import Qwen3, write_safetensors

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tiny-llama", "scripts"))
import llama  # noqa: E402

PEAK_LR = 3e-3
WARMUP = 100


def qwen3_config(vocab, eot):
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 128,
        "initializer_range": 0.02,
        "intermediate_size": 344,
        "max_position_embeddings": 2048,
        "num_attention_heads": 2,
        "num_hidden_layers": 4,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "rope_theta": 10000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "tie_word_embeddings": True,
        "dtype": "float32",
        "use_cache": True,
        "vocab_size": vocab,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-tokens", required=True, help="uint16 ids from encode.js")
    ap.add_argument("-tokenizer", required=True, help="the directory train_tokenizer.js wrote")
    ap.add_argument("-out", required=True)
    ap.add_argument("-arch", default="qwen3", choices=["qwen3", "llama"])
    ap.add_argument("-seconds", type=float, default=900)
    ap.add_argument("-device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("-seq", type=int, default=256, help="training window; 2048 on a GPU")
    ap.add_argument("-batch", type=int, default=8)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads", flush=True)
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(1234)

    with open(os.path.join(args.tokenizer, "tokenizer.json")) as f:
        tok = json.load(f)
    special = {t["content"]: t["id"] for t in tok["added_tokens"]}
    vocab = len(tok["model"]["vocab"]) + len(special)
    cfg = (llama.config if args.arch == "llama" else qwen3_config)(vocab, special["<|endoftext|>"])

    with open(args.tokens, "rb") as f:
        ids = torch.frombuffer(bytearray(f.read()), dtype=torch.int16).to(torch.int64) & 0xFFFF
    split = int(len(ids) * 0.99)
    train, val = ids[:split], ids[split:]
    print(f"{len(ids)} tokens ({len(train)} train, {len(val)} validation)", flush=True)

    def batch(src, g):
        starts = torch.randint(0, len(src) - args.seq - 1, (args.batch,), generator=g)
        x = torch.stack([src[s : s + args.seq + 1] for s in starts.tolist()]).to(args.device)
        return x[:, :-1], x[:, 1:]

    model = (llama.Llama if args.arch == "llama" else Qwen3)(cfg).to(args.device)
    print(json.dumps(cfg), flush=True)
    print(f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=PEAK_LR, betas=(0.9, 0.95))
    cuda = args.device.startswith("cuda")

    def loss_of(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
            logits = model(x)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), y.reshape(-1))

    def lr_at(step, frac):
        if step < WARMUP:
            return PEAK_LR * (step + 1) / WARMUP
        return PEAK_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    model.train()
    start, step = time.time(), 0
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, frac)
        loss = loss_of(*batch(train, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"step {step} t {time.time() - start:.0f}s lr {lr_at(step, frac):.2e} loss {loss.item():.3f}", flush=True)
        step += 1
    model.eval()
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        val_loss = sum(loss_of(*batch(val, g)).item() for _ in range(8)) / 8
    print(f"done: {step} steps, {step * args.batch * args.seq} tokens, validation loss {val_loss:.3f} nats/token", flush=True)

    os.makedirs(args.out, exist_ok=True)
    model = model.to("cpu", torch.float32)
    state = {k: v for k, v in model.state_dict().items()}  # a tied head has no lm_head.weight, as save_pretrained
    write_safetensors(os.path.join(args.out, "model.safetensors"), state)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": [cfg["eos_token_id"], special["<|im_end|>"]]}, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, name), os.path.join(args.out, name))
    print("saved:", sorted(os.listdir(args.out)), flush=True)


if __name__ == "__main__":
    main()
