#!/usr/bin/env bash
# Serves the tiny model (its own tokenizer and chat template) on 127.0.0.1, runs openai_check.mjs against it, and compares
# its output with openai_check.golden.json; -update rewrites the golden.
# Needs `npm ci` here first (the openai package) and Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/loom" ./cmd/loom)
port=$((20000 + RANDOM % 20000))
"$tmp/loom" serve -model "$root/testdata/tiny-qwen3" -addr "127.0.0.1:$port" -blocks 64 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
	sleep 0.1
done
LOOM_URL="http://127.0.0.1:$port/v1" node "$here/openai_check.mjs" >"$tmp/out.json"
if [[ "${1:-}" == "-update" ]]; then
	cp "$tmp/out.json" "$here/openai_check.golden.json"
	echo "wrote openai_check.golden.json"
elif diff -u "$here/openai_check.golden.json" "$tmp/out.json"; then
	echo "openai check: 1 passed, 0 failed"
else
	echo "openai check: 0 passed, 1 failed"
	exit 1
fi
