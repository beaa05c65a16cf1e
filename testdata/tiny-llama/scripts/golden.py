#!/usr/bin/env python3
"""golden.py writes golden.json for testdata/tiny-llama with transformers'
own LlamaForCausalLM (eager attention, float32, CPU, no network): for each
prompt of token ids, the greedy continuation and the float32 logits of every
step. Each step runs the whole sequence again (no KV cache), so the goldens
do not depend on transformers' cache code; "min_margin" is the smallest gap
between the top two logits over a case's steps. The prompts reach past
position 64, where llama3 scaling's regimes all matter.

    python3 golden.py DIR OUT.json
"""
import json
import sys

import torch
import transformers
from transformers import LlamaForCausalLM

PROMPTS = [
    ("short", [3256, 1163, 3055, 450, 1005, 1051, 9, 3022, 555], 8),
    ("one", [7], 6),
    ("long", [3256] + [(i * 37 + 11) % 3256 for i in range(90)], 6),
]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: python3 golden.py DIR OUT.json")
    torch.set_grad_enabled(False)
    model = LlamaForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation="eager").eval()
    cases = []
    for name, prompt, steps in PROMPTS:
        ids, tokens, logits, margin = list(prompt), [], [], float("inf")
        for _ in range(steps):
            out = model(input_ids=torch.tensor([ids])).logits[0, -1].to(torch.float32)
            top = torch.topk(out, 2).values
            margin = min(margin, (top[0] - top[1]).item())
            nxt = int(torch.argmax(out).item())
            tokens.append(nxt)
            logits.append([float(v) for v in out.tolist()])
            ids.append(nxt)
        cases.append({"name": name, "prompt_ids": prompt, "tokens": tokens, "logits": logits, "min_margin": margin})
        print(f"{name}: {len(prompt)} prompt tokens, min margin {margin:.4f}, tokens {tokens}", flush=True)
    with open(sys.argv[2], "w") as f:
        json.dump({"generator": "testdata/tiny-llama/scripts/golden.py", "torch": torch.__version__,
                   "transformers": transformers.__version__, "dtype": "float32", "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
