#!/usr/bin/env python3
"""torch_cuda_decode.py: the plain-PyTorch CUDA peer of `loom bench decode -device cuda`.

The same Qwen3-0.6B-shaped decoder as torch_decode.py (hidden 1024, 28
layers, 16 query and 8 KV heads of 128, MLP 3072, vocab 151936, tied
embeddings, RoPE theta 1e6, RMSNorm eps 1e-6), random weights, on the GPU
with a static KV cache [batch, KV heads, max_len, head_dim] that already
holds `--context` random tokens per sequence. A decode step writes the new
K/V rows at the step's position, attends with scaled_dot_product_attention
over the cache under a mask of the positions written so far, and picks the
next token with an argmax on the device, so no host round trip is needed
between steps.

Two modes, both measured in the same run:
- eager: the step's Python issues every kernel;
- graph: the step is captured once in a CUDA graph (torch.cuda.CUDAGraph)
  and replayed; the position lives in a device tensor that the step
  advances, so every replay is the next decode step.

TPOT is the wall time of `--steps` consecutive steps divided by their
number (the host synchronises once at the end, as a decode loop that hands
tokens back one step behind would), and the median of single steps each
followed by a synchronisation is printed beside it.

    python3 bench/peers/torch_cuda_decode.py --batch 1 --context 1024 [--steps 64] [--json]
"""
import argparse
import json
import math
import statistics
import time

import torch

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, MLP, VOCAB = 1024, 28, 16, 8, 128, 3072, 151936
THETA, EPS = 1e6, 1e-6


def rms_norm(x, w):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * w


class Model:
    def __init__(self, dtype, batch, max_len, gen, dev):
        def rnd(*shape):
            return torch.rand(*shape, generator=gen, device=dev) * 2 - 1

        def lin(out, inp):
            return (rnd(out, inp) * math.sqrt(3 / inp)).to(dtype)

        def norm(n):
            return (0.8 + 0.4 * torch.rand(n, generator=gen, device=dev)).to(dtype)

        self.embed = rnd(VOCAB, HIDDEN).to(dtype)
        self.norm = norm(HIDDEN)
        self.layers = []
        for _ in range(LAYERS):
            self.layers.append(dict(
                in_norm=norm(HIDDEN), post_norm=norm(HIDDEN), q_norm=norm(HEAD_DIM), k_norm=norm(HEAD_DIM),
                q=lin(HEADS * HEAD_DIM, HIDDEN), k=lin(KV_HEADS * HEAD_DIM, HIDDEN), v=lin(KV_HEADS * HEAD_DIM, HIDDEN),
                o=lin(HIDDEN, HEADS * HEAD_DIM), gate=lin(MLP, HIDDEN), up=lin(MLP, HIDDEN), down=lin(HIDDEN, MLP),
                kc=rnd(batch, KV_HEADS, max_len, HEAD_DIM).to(dtype),
                vc=rnd(batch, KV_HEADS, max_len, HEAD_DIM).to(dtype)))
        half = HEAD_DIM // 2
        self.inv_freq = THETA ** (-torch.arange(0, half, dtype=torch.float32, device=dev) * 2 / HEAD_DIM)
        self.positions = torch.arange(max_len, device=dev)

    def weight_bytes(self):
        n = self.embed.numel() + self.norm.numel()
        for l in self.layers:
            n += sum(v.numel() for k, v in l.items() if k not in ("kc", "vc"))
        return n * self.embed.element_size()

    def rope(self, x, pos):
        # x [B, heads, 1, D]; half-rotation form, angles in float32.
        ang = pos.float() * self.inv_freq  # [half]
        cos, sin = ang.cos(), ang.sin()
        half = HEAD_DIM // 2
        a, b = x[..., :half].float(), x[..., half:].float()
        return torch.cat([a * cos - b * sin, b * cos + a * sin], -1).to(x.dtype)

    @torch.inference_mode()
    def step(self, tokens, pos):
        """One decode step: tokens [B] int64 on the device, pos a 1-element
        int64 device tensor (the position every sequence decodes at). Returns
        the next tokens and advances pos."""
        B = tokens.shape[0]
        x = self.embed[tokens]  # [B, hidden]
        mask = (self.positions <= pos).view(1, 1, 1, -1)  # the positions written so far
        for l in self.layers:
            h = rms_norm(x, l["in_norm"])
            q = rms_norm((h @ l["q"].T).view(B, HEADS, 1, HEAD_DIM), l["q_norm"])
            k = rms_norm((h @ l["k"].T).view(B, KV_HEADS, 1, HEAD_DIM), l["k_norm"])
            v = (h @ l["v"].T).view(B, KV_HEADS, 1, HEAD_DIM)
            q, k = self.rope(q, pos), self.rope(k, pos)
            l["kc"].index_copy_(2, pos, k)
            l["vc"].index_copy_(2, pos, v)
            a = torch.nn.functional.scaled_dot_product_attention(
                q, l["kc"], l["vc"], attn_mask=mask, enable_gqa=True).reshape(B, HEADS * HEAD_DIM)
            x = x + a @ l["o"].T
            h = rms_norm(x, l["post_norm"])
            x = x + (torch.nn.functional.silu(h @ l["gate"].T) * (h @ l["up"].T)) @ l["down"].T
        logits = rms_norm(x, self.norm) @ self.embed.T  # [B, vocab]
        pos += 1
        return logits.argmax(-1)


def timed(run, steps):
    """run() issues one step. Returns (per-step time of back-to-back steps,
    median of single synchronised steps), in seconds."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    torch.cuda.synchronize()
    loop = (time.perf_counter() - start) / steps
    singles = []
    for _ in range(steps):
        t = time.perf_counter()
        run()
        torch.cuda.synchronize()
        singles.append(time.perf_counter() - t)
    return loop, statistics.median(singles)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dev = torch.device("cuda")
    dtype = getattr(torch, args.dtype)
    warmup = 3
    # Steps that write the cache: eager warm-up and two timed loops, the
    # warm-up on the side stream, graph warm-up and two timed loops of
    # replays (capture itself runs nothing), and one spare.
    max_len = args.context + 3 * warmup + 4 * args.steps + 1
    gen = torch.Generator(device=dev).manual_seed(1)
    m = Model(dtype, args.batch, max_len, gen, dev)
    tokens = torch.randint(0, VOCAB, (args.batch,), generator=gen, device=dev)
    pos = torch.tensor([args.context], device=dev)

    def eager():
        tokens.copy_(m.step(tokens, pos))

    for _ in range(warmup):
        eager()
    eager_loop, eager_single = timed(eager, args.steps)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            eager()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        eager()
    for _ in range(warmup):
        graph.replay()
    graph_loop, graph_single = timed(graph.replay, args.steps)

    wb = m.weight_bytes()
    name = torch.cuda.get_device_name()
    res = dict(peer=f"PyTorch {torch.__version__} CUDA", device=name, dtype=args.dtype, batch=args.batch,
               context=args.context, steps=args.steps, weight_bytes=wb,
               graph_tpot_ms=graph_loop * 1e3, graph_single_step_ms=graph_single * 1e3,
               eager_tpot_ms=eager_loop * 1e3, eager_single_step_ms=eager_single * 1e3,
               graph_tokens_per_s=args.batch / graph_loop)
    if args.json:
        print(json.dumps(res))
        return
    print(f"PyTorch {torch.__version__} on {name}, {args.dtype}, batch {args.batch}, context {args.context}, "
          f"{args.steps} steps, weights {wb / 1e6:.0f} MB:")
    for mode, loop, single in (("CUDA graph", graph_loop, graph_single), ("eager", eager_loop, eager_single)):
        print(f"  {mode:10s} TPOT {loop * 1e3:.3f} ms (single synchronised step {single * 1e3:.3f} ms), "
              f"{args.batch / loop:.0f} tokens/s, weights {wb / loop / 1e9:.0f} GB/s")


if __name__ == "__main__":
    main()
