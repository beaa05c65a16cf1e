#!/usr/bin/env bash
# cuda-mma-round.sh: a GPU round of the tensor-core matmul kernels
# (matmul_<dt>_gemv_mma, matmul_<dt>_tiled_mma), on by default;
# LOOM_CUDA_MMA=0 gives the FMA kernels (docs/CUDA.md, docs/BENCHMARKS.md
# "CUDA tensor-core matmul").
#
#   scripts/cuda-mma-round.sh build DIR   # here, from the repository root:
#       builds cuda.test and ops.test (CGO_ENABLED=0) into DIR and copies
#       the torch peer and this script there
#   ./cuda-mma-round.sh test              # on the GPU machine, in DIR:
#       the CUDA package's tests, then the whole op suite, both on the
#       tensor-core kernels (TestMatMulTensorCores and TestMatMulBatchInvariant
#       must run on the tensor-core kernels, not log that they are off)
#   ./cuda-mma-round.sh bench             # on the GPU machine, in DIR:
#       BenchmarkMatMulKernels with the FMA kernels (LOOM_CUDA_MMA=0) and
#       the default tensor-core kernels, the torch (cuBLAS) peer, and a table of µs per
#       product side by side
#
# test and bench each fit in one 10-minute call; their output goes to
# DIR/out/ as well.
set -euo pipefail

case "${1:-}" in
build)
	dir=${2:?usage: $0 build DIR}
	mkdir -p "$dir"
	CGO_ENABLED=0 go test -c -o "$dir/cuda.test" ./cuda
	CGO_ENABLED=0 go test -c -o "$dir/ops.test" ./ops
	cp bench/peers/torch_cuda_matmul.py "$0" "$dir/"
	;;
test)
	mkdir -p out
	for t in cuda ops; do
		./$t.test -test.v >out/$t-mma.txt 2>&1 || true
		grep -E '^\s*--- FAIL' out/$t-mma.txt | head -20 || true
		echo "$t, tensor cores: $(grep -cE '^--- PASS' out/$t-mma.txt) passed, $(grep -cE '^--- FAIL' out/$t-mma.txt) failed, $(grep -cE '^--- SKIP' out/$t-mma.txt) skipped; $(tail -1 out/$t-mma.txt)"
	done
	grep -m3 'tensor cores are off' out/ops-mma.txt || true
	grep -E '^--- .*TestMatMul(TensorCores|BatchInvariant)' out/ops-mma.txt || true
	;;
bench)
	mkdir -p out
	b=(./cuda.test -test.run '^$' -test.bench BenchmarkMatMulKernels -test.benchtime 3x)
	LOOM_CUDA_MMA=0 "${b[@]}" >out/bench-fma.txt 2>&1
	"${b[@]}" >out/bench-mma.txt 2>&1
	python3 torch_cuda_matmul.py >out/torch.txt 2>&1 || echo "torch peer failed: $(tail -1 out/torch.txt)"
	grep -E 'GB/s|^torch' out/torch.txt | head -2
	# One line per case: µs per product of the FMA kernels, the tensor-core
	# kernels (mma: whether the lowering chose them) and torch, and the
	# tensor-core kernels' speed-up over FMA and share of torch's speed.
	python3 - <<'EOF'
import re
def loom(path):
    r = {}
    for line in open(path):
        m = re.match(r'BenchmarkMatMulKernels/(\S+?)(-\d+)?\s+\d+\s+(.*)', line)
        if m:
            v = {u: float(x) for x, u in re.findall(r'([\d.e+-]+) (\S+)', m.group(3))}
            r[m.group(1)] = v
    return r
fma, mma = loom('out/bench-fma.txt'), loom('out/bench-mma.txt')
torch = {}
for line in open('out/torch.txt'):
    m = re.match(r'torch (\S+): +([\d.]+) µs', line)
    if m:
        torch[m.group(1)] = float(m.group(2))
print(f"{'case':32} {'fma µs':>9} {'mma µs':>9} {'mma':>4} {'torch µs':>9} {'fma/mma':>8} {'torch/mma':>9}")
for case in dict.fromkeys(list(fma) + list(mma)):
    f, t = fma.get(case, {}).get('µs/kernel'), torch.get(case)
    m = mma.get(case, {})
    g = lambda x: f"{x:9.2f}" if x else f"{'-':>9}"
    ratio = lambda a, b: f"{a / b:8.2f}" if a and b else f"{'-':>8}"
    print(f"{case:32} {g(f)} {g(m.get('µs/kernel'))} {int(m.get('mma', -1)):>4} {g(t)} {ratio(f, m.get('µs/kernel'))} {ratio(t, m.get('µs/kernel')):>9}")
EOF
	;;
*)
	echo "usage: $0 build DIR | test | bench" >&2
	exit 2
	;;
esac
