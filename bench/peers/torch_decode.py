#!/usr/bin/env python3
"""torch_decode.py: the PyTorch-on-CPU peer of `loom bench decode`.

A Qwen3-0.6B-shaped decoder (hidden 1024, 28 layers, 16 query and 8 KV
heads of 128, MLP 3072, vocab 151936, tied embeddings, RoPE theta 1e6,
RMSNorm eps 1e-6) with random weights, written in plain PyTorch, decoding
one token per sequence per step against a KV cache that already holds
`--context` random tokens per sequence. It prints the median time per step
(TPOT) and tokens/s, like `loom bench decode`.

    /usr/bin/python3 bench/peers/torch_decode.py --batch 1 --context 1024 [--dtype bfloat16] [--steps 16]

Run it with Debian's PyTorch (apt-get install -y python3-torch).
"""
import argparse
import json
import math
import os
import statistics
import time

import torch

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, MLP, VOCAB = 1024, 28, 16, 8, 128, 3072, 151936
THETA, EPS = 1e6, 1e-6


def rms_norm(x, w):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * w


def rope(x, pos):
    # x [B, heads, 1, D]; half-rotation form, angles in float32.
    half = HEAD_DIM // 2
    inv = THETA ** (-torch.arange(0, half, dtype=torch.float32) * 2 / HEAD_DIM)
    ang = pos.float()[:, None, None, None] * inv  # [B,1,1,half]
    cos, sin = ang.cos(), ang.sin()
    a, b = x[..., :half].float(), x[..., half:].float()
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1).to(x.dtype)


class Model:
    def __init__(self, dtype, batch, max_len, gen):
        def lin(out, inp):
            s = math.sqrt(3 / inp)
            return ((torch.rand(out, inp, generator=gen) * 2 - 1) * s).to(dtype)

        def norm(n):
            return (0.8 + 0.4 * torch.rand(n, generator=gen)).to(dtype)

        self.embed = (torch.rand(VOCAB, HIDDEN, generator=gen) * 2 - 1).to(dtype)
        self.norm = norm(HIDDEN)
        self.layers = []
        for _ in range(LAYERS):
            self.layers.append(dict(
                in_norm=norm(HIDDEN), post_norm=norm(HIDDEN), q_norm=norm(HEAD_DIM), k_norm=norm(HEAD_DIM),
                q=lin(HEADS * HEAD_DIM, HIDDEN), k=lin(KV_HEADS * HEAD_DIM, HIDDEN), v=lin(KV_HEADS * HEAD_DIM, HIDDEN),
                o=lin(HIDDEN, HEADS * HEAD_DIM), gate=lin(MLP, HIDDEN), up=lin(MLP, HIDDEN), down=lin(HIDDEN, MLP),
                # The cache: [B, KV heads, max_len, D], random values in the context.
                kc=(torch.rand(batch, KV_HEADS, max_len, HEAD_DIM, generator=gen) * 2 - 1).to(dtype),
                vc=(torch.rand(batch, KV_HEADS, max_len, HEAD_DIM, generator=gen) * 2 - 1).to(dtype)))

    def weight_bytes(self):
        n = self.embed.numel() + self.norm.numel()
        for l in self.layers:
            n += sum(v.numel() for k, v in l.items() if k not in ("kc", "vc"))
        return n * self.embed.element_size()

    @torch.inference_mode()
    def step(self, tokens, pos):
        # tokens [B] int64, pos: the position every sequence decodes at.
        B = tokens.shape[0]
        x = self.embed[tokens]  # [B, hidden]
        p = torch.full((B,), pos)
        g = HEADS // KV_HEADS
        for l in self.layers:
            h = rms_norm(x, l["in_norm"])
            q = rms_norm((h @ l["q"].T).view(B, HEADS, 1, HEAD_DIM), l["q_norm"])
            k = rms_norm((h @ l["k"].T).view(B, KV_HEADS, 1, HEAD_DIM), l["k_norm"])
            v = (h @ l["v"].T).view(B, KV_HEADS, 1, HEAD_DIM)
            q, k = rope(q, p), rope(k, p)
            l["kc"][:, :, pos] = k[:, :, 0]
            l["vc"][:, :, pos] = v[:, :, 0]
            K, V = l["kc"][:, :, : pos + 1], l["vc"][:, :, : pos + 1]  # [B, KVH, T, D]
            qg = q.view(B, KV_HEADS, g, HEAD_DIM)  # the query heads of each KV head
            # Products in the cache's dtype (oneDNN's bf16 kernels accumulate
            # in float32): converting the cache to float32 first is 10× slower.
            s = (qg @ K.transpose(-1, -2)).float() / math.sqrt(HEAD_DIM)  # [B, KVH, g, T]
            a = (torch.softmax(s, -1).to(x.dtype) @ V).reshape(B, HEADS * HEAD_DIM)
            x = x + a @ l["o"].T
            h = rms_norm(x, l["post_norm"])
            x = x + (torch.nn.functional.silu(h @ l["gate"].T) * (h @ l["up"].T)) @ l["down"].T
        return rms_norm(x, self.norm) @ self.embed.T  # [B, vocab]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    warmup = 2
    gen = torch.Generator().manual_seed(1)
    t0 = time.time()
    m = Model(dtype, args.batch, args.context + warmup + args.steps, gen)
    setup = time.time() - t0
    tokens = torch.randint(0, VOCAB, (args.batch,), generator=gen)
    times = []
    for i in range(warmup + args.steps):
        start = time.perf_counter()
        logits = m.step(tokens, args.context + i)
        tokens = logits.float().argmax(-1)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    tpot = statistics.median(times)
    res = dict(peer=f"PyTorch {torch.__version__} CPU", dtype=args.dtype, batch=args.batch, context=args.context,
               steps=args.steps, threads=args.threads, tpot_ms=tpot * 1e3, tpot_best_ms=min(times) * 1e3,
               tokens_per_s=args.batch / tpot, weight_bytes=m.weight_bytes(), setup_s=setup)
    if args.json:
        print(json.dumps(res))
        return
    print(f"PyTorch {torch.__version__} on the CPU, {args.threads} threads, {args.dtype}, batch {args.batch}, "
          f"context {args.context}, {args.steps} steps (setup {setup:.1f} s):")
    print(f"  TPOT {tpot * 1e3:.2f} ms median (best {min(times) * 1e3:.2f} ms), {args.batch / tpot:.1f} tokens/s, "
          f"weights {m.weight_bytes() / 1e6:.0f} MB: {m.weight_bytes() / tpot / 1e9:.1f} GB/s")


if __name__ == "__main__":
    main()
