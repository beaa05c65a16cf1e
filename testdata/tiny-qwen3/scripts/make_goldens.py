#!/usr/bin/env python3
"""make_goldens.py writes golden.json for the tiny model: for each prompt,
the greedy continuation and the float32 logits of every generated step,
computed by transformers' Qwen3ForCausalLM from the model directory's
safetensors on the CPU in float32 with eager attention.

Each step runs the whole sequence again (no KV cache), so the goldens do not
depend on transformers' cache code. "min_margin" is the smallest gap between
the top two logits over a case's steps: a greedy token is only as stable as
that gap.

    python3 make_goldens.py -model DIR -long-prompt long_prompt.txt -o golden.json
"""
import argparse
import json

import torch
import transformers
from transformers import Qwen3ForCausalLM

EOT = 256

PROMPTS = [
    ("package", "package main\n\nimport (\n\t\"fmt\"\n", 24),
    ("copyright", "// Copyright 2009 The Go Authors. All rights reserved.\n", 24),
    ("method", "func (b *Buffer) Write(p []byte) (n int, err error) {\n", 24),
    ("one-byte", "x", 12),
]


def run(model, ids, steps):
    ids = list(ids)
    tokens, logits, margin = [], [], float("inf")
    with torch.no_grad():
        for _ in range(steps):
            out = model(input_ids=torch.tensor([ids])).logits[0, -1].to(torch.float32)
            top = torch.topk(out, 2).values
            margin = min(margin, (top[0] - top[1]).item())
            nxt = int(torch.argmax(out).item())
            tokens.append(nxt)
            logits.append([float(v) for v in out.tolist()])
            ids.append(nxt)
    return tokens, logits, margin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-model", required=True)
    ap.add_argument("-long-prompt", required=True)
    ap.add_argument("-o", required=True)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = Qwen3ForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager").eval()
    with open(args.long_prompt, "rb") as f:
        long_prompt = f.read().decode("utf-8")
    cases = []
    for name, text, steps in PROMPTS + [("long", long_prompt, 16)]:
        ids = [EOT] + list(text.encode("utf-8"))
        tokens, logits, margin = run(model, ids, steps)
        cases.append({"name": name, "prompt_ids": ids, "tokens": tokens, "logits": logits, "min_margin": margin})
        text_out = bytes(t for t in tokens if t < 256).decode("utf-8", "replace")
        print(f"{name}: {len(ids)} prompt tokens, min margin {margin:.4f}: {text_out!r}", flush=True)
    golden = {
        "generator": "testdata/tiny-qwen3/scripts/make_goldens.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": "float32",
        "cases": cases,
    }
    with open(args.o, "w") as f:
        json.dump(golden, f)
        f.write("\n")


if __name__ == "__main__":
    main()
