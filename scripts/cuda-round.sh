#!/usr/bin/env bash
# cuda-round.sh: one GPU round of the whole CUDA side of Loom, from binaries
# built on a machine without a GPU (docs/CUDA.md "What has run on a GPU").
#
#   scripts/cuda-round.sh build DIR   # here, from the repository root:
#       CGO_ENABLED=0 test binaries of cuda, ops and model, the loom
#       command and the PyTorch peer, into DIR (e.g. .dev/round, which
#       .gitignore ignores: name it in the GPU call's carry so that it
#       travels with the tree)
#   scripts/cuda-round.sh test DIR    # on the GPU machine, from the root:
#       the three suites with the defaults, then again with
#       LOOM_CUDA_GRAPHS=0; the tiny Llama's transformers golden
#   scripts/cuda-round.sh bench DIR   # on the GPU machine, from the root:
#       loom bench decode at batch 1, 8 and 32 beside
#       bench/peers/torch_cuda_decode.py in the same call, graphs off and
#       on (on: with a kernel profile, -kernels 4), loom bench encode,
#       loom bench attention beside bench/peers/torch_cuda_attention.py,
#       and the 4-bit decode at batch 1
#   scripts/cuda-round.sh profile DIR # on the GPU machine, from the root:
#       every kernel of one batch-1 decode step under Nsight Compute
#       (ncu --clock-control none; each kernel alone, caches flushed
#       before it), summed per kernel; then loom bench serve on the
#       Qwen3-0.6B shape at 128 concurrent requests
#
# Logs go to DIR/out/; each step prints a short summary last. test and bench
# each fit in one 10-minute call on an H100 (the first CUDA start compiles
# the kernels, about half a minute).
set -uo pipefail

cmd=${1:?usage: $0 build|test|bench|profile DIR}
dir=$(realpath -m "${2:?usage: $0 $cmd DIR}")
out=$dir/out

case $cmd in
build)
	set -e
	mkdir -p "$dir"
	# Stripped, so that the folder fits the GPU call's carry.
	for p in cuda ops model; do
		CGO_ENABLED=0 go test -c -ldflags='-s -w' -o "$dir/$p.test" "./$p"
	done
	CGO_ENABLED=0 go build -ldflags='-s -w' -o "$dir/loom" ./cmd/loom
	cp bench/peers/torch_cuda_decode.py bench/peers/torch_cuda_attention.py "$dir/"
	;;
test)
	mkdir -p "$out"
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	(HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 timeout 120 python3 testdata/tiny-qwen3/scripts/make_goldens.py -model testdata/tiny-llama \
		-long-prompt testdata/tiny-qwen3/long_prompt.txt -o "$out/tiny-llama-golden_transformers.json" >"$out/llama-golden.txt" 2>&1)
	echo "tiny Llama transformers golden: exit $? (copy $out/tiny-llama-golden_transformers.json to testdata/tiny-llama/golden_transformers.json)"
	for graphs in 1 0; do
		for p in cuda ops model; do
			# Each suite runs in its package folder: the tests read testdata
			# relative to it.
			log=$out/$p-graphs$graphs.txt
			(cd "$p" && LOOM_CUDA_GRAPHS=$graphs timeout 280 "$dir/$p.test" -test.timeout 270s >"$log" 2>&1)
			echo "$p, LOOM_CUDA_GRAPHS=$graphs: exit $? ($(tail -1 "$log"))"
			grep -E '^\s*--- FAIL' "$log" | head -10
		done
	done
	;;
bench)
	mkdir -p "$out"
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
	for case in "1 1024" "8 1024" "32 2048"; do
		set -- $case
		for graphs in 0 1; do
			kernels=$((graphs * 4))
			LOOM_CUDA_GRAPHS=$graphs timeout 90 "$dir/loom" bench decode -device cuda -batch "$1" -context "$2" -steps 32 -kernels $kernels -json \
				>"$out/decode-b$1-g$graphs.json" 2>"$out/decode-b$1-g$graphs.err"
			echo "loom batch $1 context $2 graphs $graphs: $(grep -o '"tpot_ms":[0-9.]*\|"host_us_per_step":[0-9.]*\|"dispatches_per_step":[0-9.]*' "$out/decode-b$1-g$graphs.json" | tr '\n' ' ')"
		done
		PYTHONUNBUFFERED=1 timeout 120 python3 "$dir/torch_cuda_decode.py" --batch "$1" --context "$2" --steps 32 2>&1 | grep -iv warn | tail -3
	done
	for graphs in 0 1; do
		LOOM_CUDA_GRAPHS=$graphs timeout 90 "$dir/loom" bench encode -device cuda -json >"$out/encode-g$graphs.json" 2>&1
		echo "encode graphs $graphs: $(head -c 600 "$out/encode-g$graphs.json")"
	done
	timeout 90 "$dir/loom" bench attention -device cuda -dtype bf16 >"$out/attention.txt" 2>&1
	echo "attention: exit $?"; grep '^decode' "$out/attention.txt"
	PYTHONUNBUFFERED=1 timeout 90 python3 "$dir/torch_cuda_attention.py" --dtype bf16 2>&1 | grep -iv warn | tail -8
	timeout 90 "$dir/loom" bench decode -device cuda -weights q4 -batch 1 -context 1024 -steps 32 -json >"$out/decode-q4.json" 2>&1
	echo "4-bit decode batch 1: $(grep -o '"tpot_ms":[0-9.]*\|"weight_limit_ms":[0-9.]*' "$out/decode-q4.json" | tr '\n' ' ')"
	;;
profile)
	mkdir -p "$out"
	ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
	# A step is about 230 launches; the first ~700 are setup and warm-up.
	timeout 120 "$ncu" --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum \
		--launch-skip 700 --launch-count 229 --print-summary per-kernel \
		"$dir/loom" bench decode -device cuda -batch 1 -context 1024 -steps 4 >"$out/ncu.txt" 2>&1
	echo "ncu: exit $?"
	grep -v '==PROF==' "$out/ncu.txt" | awk '/Invocations/ {k=$1 " (grid x " substr($2, 2) ") x" $NF} /gpu__time_duration/ {print k ": " $NF " us each"}'
	timeout 120 "$dir/loom" bench serve -device cuda -shape qwen3-0.6b -concurrency 128 -requests 256 \
		-prompt-len 128 -output-len 128 -ignore-eos -blocks 8192 >"$out/serve.txt" 2>&1
	echo "serve: exit $?"
	tail -8 "$out/serve.txt"
	# The same with every launch timed (slower: its throughput does not compare).
	timeout 120 "$dir/loom" bench serve -device cuda -shape qwen3-0.6b -concurrency 128 -requests 128 -warmup 32 \
		-prompt-len 128 -output-len 128 -ignore-eos -blocks 8192 -kernels >"$out/serve-kernels.txt" 2>&1
	echo "serve -kernels: exit $?"
	grep -A20 'GPU time of a step' "$out/serve-kernels.txt"
	;;
*)
	echo "usage: $0 build|test|bench|profile DIR" >&2
	exit 2
	;;
esac
