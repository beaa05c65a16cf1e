#!/usr/bin/env python3
"""torch_cuda_attention.py: the PyTorch-on-CUDA peer of `loom bench
attention -device cuda`'s decode cases.

Times torch.nn.functional.scaled_dot_product_attention over the same bytes
as each decode case of Loom's suite (cmd/loom/bench_attention.go): B
sequences of one query token, H query heads, 8 KV heads, a dense K and V
cache of the case's context per sequence ([B, kv_heads, ctx, head_size],
so the same K/V bytes as Loom's paged cache) read once per KV head
(enable_gqa=True), float16 by default, random data. Each sample is a run of
calls between CUDA events, eager, as Loom times a run of Evals; prints the
median and best per call in ms and the K/V GB/s, beside the read bandwidth
of a large sum.

    python3 bench/peers/torch_cuda_attention.py [--dtype f16] [--reps 9]
"""
import argparse
import statistics

import torch
import torch.nn.functional as F

# name, batch, context, query heads, head size (8 KV heads), as decodeCase.
DECODE = [
    ("decode-small", 1, 128, 8, 128),
    ("decode-typical", 8, 2048, 8, 128),
    ("decode-big-head", 8, 2048, 32, 256),
    ("decode-long", 32, 8192, 8, 128),
    ("decode-long-16384", 32, 16384, 8, 128),
]
KV_HEADS = 8
DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}


def samples(fn, calls, reps):
    """Per-call ms of reps runs of calls calls of fn, by CUDA events."""
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / calls)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="f16", choices=sorted(DTYPES))
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    dt = DTYPES[args.dtype]
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, {args.dtype}")
    buf = torch.rand(256 << 20, device=dev, dtype=torch.float32)  # 1 GiB
    ms = min(samples(lambda: buf.sum(), 1, 5))
    print(f"read bandwidth (sum of 1 GiB of float32): {buf.numel() * 4 / ms / 1e6:.1f} GB/s")
    del buf
    print(f"{'case':<20} {'median ms':>10} {'best ms':>9} {'K/V MiB':>8} {'GB/s':>7}")
    for name, b, ctx, heads, hs in DECODE:
        q = torch.rand(b, heads, 1, hs, device=dev, dtype=dt) * 2 - 1
        k = torch.rand(b, KV_HEADS, ctx, hs, device=dev, dtype=dt) * 2 - 1
        v = torch.rand(b, KV_HEADS, ctx, hs, device=dev, dtype=dt) * 2 - 1
        kv_bytes = 2 * k.numel() * k.element_size()
        calls = max(1, int(2e9 // kv_bytes))  # runs of a few ms at the read bandwidth
        fn = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=heads != KV_HEADS)
        s = samples(fn, calls, args.reps)
        med = statistics.median(s)
        print(f"{name:<20} {med:10.4f} {min(s):9.4f} {kv_bytes / 2**20:8.1f} {kv_bytes / med / 1e6:7.0f}")


if __name__ == "__main__":
    main()
