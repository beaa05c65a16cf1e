#!/usr/bin/env python3
"""make_corpus.py writes the training text of the tiny model.

The text is the Go distribution's own sources and documents (BSD licence,
see /usr/local/go/LICENSE): every non-test .go file under GOROOT/src outside
testdata and vendor folders, and the documents under GOROOT/doc, in sorted
path order. Documents are separated by a NUL byte, which the training script
maps to the end-of-text token (256). The output is gzip-compressed.

    python3 make_corpus.py [-goroot /usr/local/go] -o corpus.bin.gz
"""
import argparse
import gzip
import os


def documents(goroot):
    paths = []
    for base, dirs, files in os.walk(os.path.join(goroot, "src")):
        dirs[:] = [d for d in dirs if d not in ("testdata", "vendor")]
        for f in files:
            if f.endswith(".go") and not f.endswith("_test.go"):
                paths.append(os.path.join(base, f))
    for base, _, files in os.walk(os.path.join(goroot, "doc")):
        for f in files:
            if f.endswith((".html", ".md")):
                paths.append(os.path.join(base, f))
    for p in sorted(paths):
        with open(p, "rb") as fh:
            data = fh.read()
        if b"\0" in data:  # NUL is the separator
            continue
        yield data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-goroot", default="/usr/local/go")
    ap.add_argument("-o", required=True)
    args = ap.parse_args()
    n = total = 0
    with gzip.open(args.o, "wb", compresslevel=6) as out:
        for doc in documents(args.goroot):
            out.write(doc)
            out.write(b"\0")
            n += 1
            total += len(doc)
    print(f"{n} documents, {total} bytes -> {args.o}")


if __name__ == "__main__":
    main()
