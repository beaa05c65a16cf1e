#!/usr/bin/env python3
"""make_goldens.py writes golden.json for a tiny model directory, the
Qwen3 one here or ../../tiny-llama's Llama: for each prompt (the long one is
long_prompt.txt twice), its token ids (the model's <|endoftext|> BOS, then
the text encoded by the reference tokenizer), the greedy continuation and
the float32 logits of every generated step, computed on the CPU in float32
from the model directory's safetensors by transformers' class that
config.json's architectures names (eager attention), or with -impl plain by
this folder's plain-PyTorch Qwen3 (qwen3.py) or tiny-llama's Llama
(llama.py) where transformers is not installed.

Each step runs the whole sequence again (no KV cache), so the goldens do not
depend on a cache. "min_margin" is the smallest gap between the top two
logits over a case's steps: a greedy token is only as stable as that gap.
The text is encoded with the Python tokenizers package when it is installed
(it comes with transformers), else with encode.js (node and
@huggingface/tokenizers).

    python3 make_goldens.py -model DIR -o golden.json [-long-prompt long_prompt.txt] [-impl transformers|plain]
"""
import argparse
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

PROMPTS = [
    ("package", "package main\n\nimport (\n\t\"fmt\"\n", 12),
    ("copyright", "// Copyright 2009 The Go Authors. All rights reserved.\n", 12),
    ("method", "func (b *Buffer) Write(p []byte) (n int, err error) {\n", 12),
    ("one-token", "x", 8),
]


def encode(model_dir, texts):
    path = os.path.join(model_dir, "tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        out = subprocess.run(["node", os.path.join(HERE, "encode.js"), path, "-texts"], input=json.dumps(texts),
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out), "@huggingface/tokenizers (encode.js)"
    import tokenizers
    tok = Tokenizer.from_file(path)
    return [tok.encode(t, add_special_tokens=False).ids for t in texts], "tokenizers " + tokenizers.__version__


def run(model, ids, steps):
    ids = list(ids)
    tokens, logits, margin = [], [], float("inf")
    with torch.no_grad():
        for _ in range(steps):
            out = model(torch.tensor([ids]))[0, -1].to(torch.float32)
            top = torch.topk(out, 2).values
            margin = min(margin, (top[0] - top[1]).item())
            nxt = int(torch.argmax(out).item())
            tokens.append(nxt)
            # 9 significant digits hold a float32 exactly.
            logits.append([float(f"{v:.9g}") for v in out.tolist()])
            ids.append(nxt)
    return tokens, logits, margin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-model", required=True)
    ap.add_argument("-long-prompt", default=os.path.join(HERE, "..", "long_prompt.txt"))
    ap.add_argument("-o", required=True)
    ap.add_argument("-impl", default="transformers", choices=["transformers", "plain"])
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    arch = config["architectures"][0]
    if args.impl == "transformers":
        import transformers
        # float32 whatever the transformers version's default dtype.
        hf = getattr(transformers, arch).from_pretrained(args.model, attn_implementation="eager").float().eval()
        model = lambda ids: hf(input_ids=ids).logits
        impl = f"transformers {transformers.__version__} {arch}"
    elif arch == "Qwen3ForCausalLM":
        from qwen3 import Qwen3
        model = Qwen3.load(args.model)
        impl = "tiny-qwen3/scripts/qwen3.py (plain PyTorch)"
    elif arch == "LlamaForCausalLM":
        sys.path.insert(0, os.path.join(HERE, "..", "..", "tiny-llama", "scripts"))
        from llama import Llama
        model = Llama.load(args.model)
        impl = "tiny-llama/scripts/llama.py (plain PyTorch)"
    else:
        sys.exit(f"{arch}: no plain-PyTorch model for it")
    bos = config["bos_token_id"]
    with open(args.long_prompt, "rb") as f:
        long_prompt = f.read().decode("utf-8")
    # Twice the long prompt's text: past 512 tokens, two partitions of
    # split-KV attention.
    prompts = PROMPTS + [("long", long_prompt * 2, 8)]
    encoded, tokenizer = encode(args.model, [p[1] for p in prompts])
    cases = []
    for (name, text, steps), ids in zip(prompts, encoded):
        ids = [bos] + ids
        tokens, logits, margin = run(model, ids, steps)
        cases.append({"name": name, "prompt": text, "prompt_ids": ids, "tokens": tokens, "logits": logits, "min_margin": margin})
        print(f"{name}: {len(ids)} prompt tokens, min margin {margin:.4f}: {tokens}", flush=True)
    golden = {
        "generator": "testdata/tiny-qwen3/scripts/make_goldens.py",
        "model": impl,
        "tokenizer": tokenizer,
        "torch": torch.__version__,
        "dtype": "float32",
        "cases": cases,
    }
    with open(args.o, "w") as f:
        json.dump(golden, f)
        f.write("\n")


if __name__ == "__main__":
    main()
