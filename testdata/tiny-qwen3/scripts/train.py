#!/usr/bin/env python3
"""train.py trains the tiny Qwen3 model that Loom ships for tests and `make run`.

A Qwen3-architecture model (hidden 256, 4 layers, 4 query heads and 2 KV
heads of size 64, MLP 688, tied embeddings) over a byte-level vocabulary:
tokens 0-255 are bytes, 256 is <|endoftext|> (document separator, BOS and
EOS). It is trained with transformers' Qwen3ForCausalLM on one CUDA GPU for a
fixed wall-clock budget, on the text make_corpus.py writes, and saved in
float32 with save_pretrained (config.json + model.safetensors).

    python3 train.py -corpus corpus.bin.gz -out DIR [-seconds 210]
"""
import argparse
import gzip
import json
import math
import os
import time

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

EOT = 256
VOCAB = 257
SEQ = 2048  # training windows cover every position up to max_position_embeddings
BATCH = 16
PEAK_LR = 2e-3
WARMUP = 200


def config():
    kw = dict(
        vocab_size=VOCAB,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=SEQ,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=EOT,
        eos_token_id=EOT,
        attention_bias=False,
        hidden_act="silu",
    )
    if int(transformers.__version__.split(".")[0]) >= 5:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        kw["rope_theta"] = 10000.0
    return Qwen3Config(**kw)


def load_tokens(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)
    t[t == 0] = EOT
    return torch.cat([torch.tensor([EOT]), t])


def batches(tokens, gen, device):
    starts = torch.randint(0, len(tokens) - SEQ - 1, (BATCH,), generator=gen)
    x = torch.stack([tokens[s : s + SEQ + 1] for s in starts.tolist()]).to(device)
    return x[:, :-1], x[:, 1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-corpus", required=True)
    ap.add_argument("-out", required=True)
    ap.add_argument("-seconds", type=float, default=210)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, cuda {torch.cuda.is_available()}", flush=True)
    device = "cuda"
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(1234)

    tokens = load_tokens(args.corpus)
    split = int(len(tokens) * 0.99)
    train, val = tokens[:split], tokens[split:]
    print(f"{len(tokens)} tokens ({len(train)} train, {len(val)} validation)", flush=True)

    cfg = config()
    model = Qwen3ForCausalLM(cfg).to(device)
    print(cfg, flush=True)
    print(f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=PEAK_LR, betas=(0.9, 0.95), fused=True)

    def lr_at(step, frac):
        if step < WARMUP:
            return PEAK_LR * (step + 1) / WARMUP
        return PEAK_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def evaluate(n=8):
        model.eval()
        g = torch.Generator().manual_seed(99)
        total = 0.0
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(n):
                x, y = batches(val, g, device)
                logits = model(input_ids=x).logits.float()
                total += torch.nn.functional.cross_entropy(logits.view(-1, VOCAB), y.reshape(-1)).item()
        model.train()
        return total / n

    model.train()
    start = time.time()
    step = 0
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, frac)
        x, y = batches(train, gen, device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 250 == 0:
            print(f"step {step} t {time.time() - start:.0f}s lr {lr_at(step, frac):.2e} loss {loss.item():.3f}", flush=True)
        step += 1
    val_loss = evaluate()
    print(f"done: {step} steps, {step * BATCH * SEQ} tokens, validation loss {val_loss:.3f} nats/byte "
          f"({val_loss / math.log(2):.3f} bits/byte)", flush=True)

    model = model.to("cpu", torch.float32).eval()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out)
    with open(os.path.join(args.out, "loom_tokenizer.json"), "w") as f:
        json.dump({"type": "bytes", "vocab_size": VOCAB, "special_tokens": {"<|endoftext|>": EOT}}, f, indent=1)
        f.write("\n")
    print("saved:", sorted(os.listdir(args.out)), flush=True)


if __name__ == "__main__":
    main()
