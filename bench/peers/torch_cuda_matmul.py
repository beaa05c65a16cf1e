#!/usr/bin/env python3
"""torch_cuda_matmul.py: the PyTorch-on-CUDA peer of cuda.test's
BenchmarkMatMulKernels.

Times torch's products (cuBLAS) on the GPU with CUDA events around a CUDA
graph of launches, the same cases and the same way: x[M, K] · Wᵀ (torch.nn.functional.linear) for the
Qwen3-0.6B projections at M = 1, 8, 32, 64, 65, 128, each launch reading another of
enough weight sets to exceed the L2 cache, and the prefill and square
products; bfloat16, random data (never zeros). Prints one line per case
(µs per product, weight GB/s, TFLOP/s) and the read bandwidth of a large
sum, for comparison with `loom bench membw -device cuda`.

    python3 bench/peers/torch_cuda_matmul.py [--reps 5]
"""
import argparse

import torch
import torch.nn.functional as F

LINEAR = [("q", 2048, 1024), ("kv", 1024, 1024), ("o", 1024, 2048), ("gate_up", 3072, 1024), ("down", 1024, 3072),
          ("qkv", 4096, 1024), ("gate+up", 6144, 1024), ("lm_head", 151936, 1024)]


def timed(fn, reps):
    """Best of reps runs of fn (a run of launches), in ms, by CUDA events."""
    fn()
    torch.cuda.synchronize()
    best = None
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        t = start.elapsed_time(end)
        best = t if best is None else min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rows", default="1,8,32,64,65,128", help="the row counts M of the projections, comma-separated")
    ap.add_argument("--shapes", default="", help="only these projections (comma-separated names); no prefill or square products")
    args = ap.parse_args()
    dt = torch.bfloat16
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, bfloat16")
    buf = torch.rand(256 << 20, device=dev, dtype=torch.float32)  # 1 GiB
    ms = timed(lambda: buf.sum(), args.reps)
    print(f"read bandwidth (sum of 1 GiB of float32): {buf.numel() * 4 / ms / 1e6:.1f} GB/s")
    rows = [int(r) for r in args.rows.split(",")]
    only = set(args.shapes.split(",")) if args.shapes else None
    cases = [(name, m, n, k) for m in rows for (name, n, k) in LINEAR if only is None or name in only]
    if only is None:
        cases += [("prefill_gate_up", 512, 3072, 1024), ("square", 1024, 1024, 1024), ("square", 4096, 4096, 4096)]
    for name, m, n, k in cases:
        wbytes = n * k * 2
        sets = max(1, (256 << 20) // wbytes)
        reps = max(sets, 8)
        if m >= 512:  # prefill and square: compute-bound
            sets, reps = 2, 20
        ws = [torch.rand(n, k, device=dev, dtype=dt) * 2 - 1 for _ in range(sets)]
        x = torch.rand(m, k, device=dev, dtype=dt) * 2 - 1
        out = torch.empty(m, n, device=dev, dtype=dt)

        def run():
            for i in range(reps):
                torch.matmul(x, ws[i % sets].t(), out=out)

        # Captured in a CUDA graph, so that the host's launch cost does not
        # leave gaps between the kernels (Loom's benchmark keeps the GPU
        # busy while it launches, to the same end).
        run()
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            run()
        s = timed(g.replay, args.reps) / 1e3 / reps
        print(f"torch {name}_{m}x{n}x{k}: {s * 1e6:9.2f} µs/kernel {wbytes / s / 1e9:8.1f} weight-GB/s {2 * m * n * k / s / 1e12:7.2f} TFLOP/s")
        del ws, x, out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
