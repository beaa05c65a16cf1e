package cuda

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// BenchmarkQuantizedMatMul times the quantized matmul kernels on the GPU
// the way BenchmarkMatMulKernels times the float ones (CUDA events around a
// run of launches queued behind busy work, each launch reading another of
// enough weight sets to pass 256 MB, beyond the 50 MB L2): x[M, K] by
// 4- and 8-bit weights (bfloat16 x, scales and biases, groups of 64 or
// LOOM_QUANT_GROUP) at the Qwen3-0.6B shapes, 1,024 → 4,096 (QKV), 2,048 →
// 1,024 (O), 1,024 → 6,144 (gate+up), 3,072 → 1,024 (down) and 1,024 →
// 151,936 (the lm_head), at M = 1, 4 and 8, beside the bfloat16 product of
// the same shape (the lowering's kernel); and the gated product of the MLP
// ("gated": x by the stacked gate and up weights 2·3,072 × 1,024 through
// SiLU·mul, qmatmul_silu_mul) at M = 1, to set beside gate+up's matmul,
// which silu_mul follows unfused. weight-GB/s counts the packed
// codes plus the scales and biases, read-% is its share of the read
// bandwidth measured first. LOOM_MATMUL_GRID forces the quantized grid's
// width (any width gives the same results).
func BenchmarkQuantizedMatMul(b *testing.B) {
	d := device(b)
	kt := newKernelTimer(b, d)
	defer kt.release()
	group := 64
	if s := os.Getenv("LOOM_QUANT_GROUP"); s != "" {
		var err error
		if group, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	bw, err := d.MeasureBandwidth(1<<30, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("read bandwidth %.0f GB/s (copy %.0f GB/s)", bw.Read, bw.Kernel)
	const dt = graph.BFloat16
	for _, sh := range []struct {
		name  string
		n, k  int
		gated bool
	}{{"qkv", 4096, 1024, false}, {"o", 1024, 2048, false}, {"gate+up", 6144, 1024, false}, {"gated", 6144, 1024, true}, {"down", 1024, 3072, false},
		{"lm_head", 151936, 1024, false}} {
		for _, kind := range []string{"q4", "q8", "bf16"} {
			bits := 0
			if kind != "bf16" {
				bits = int(kind[1] - '0')
			}
			ms := []int{1, 4, 8}
			if sh.gated {
				if bits == 0 {
					continue // BenchmarkMatMulKernels has the bfloat16 gated GEMV
				}
				ms = ms[:1]
			}
			// The weights' buffers: codes, scales and biases (bfloat16: the matrix alone).
			var sizes []int64
			if bits == 0 {
				sizes = []int64{int64(sh.n * sh.k * dt.Size())}
			} else {
				sb := int64(sh.n * sh.k / group * dt.Size())
				sizes = []int64{int64(sh.n * sh.k * bits / 8), sb, sb}
			}
			var wBytes int64
			for _, s := range sizes {
				wBytes += s
			}
			sets := int(max(1, (256<<20+wBytes-1)/wBytes))
			var ws [][]runtime.Buffer // made by the first case that runs (-test.bench may skip all)
			for _, m := range ms {
				b.Run(fmt.Sprintf("%s_%dx%dx%d/%s", sh.name, m, sh.n, sh.k, kind), func(b *testing.B) {
					for i := len(ws); i < sets; i++ {
						var set []runtime.Buffer
						for j, s := range sizes {
							// Random codes; scales and biases in [-1, 1).
							set = append(set, randomBuffer(b, d, graph.BFloat16, int(s/2), uint64(3*i+j+2)))
						}
						ws = append(ws, set)
					}
					x := randomBuffer(b, d, dt, m*sh.k, 1)
					out := deviceBuffer(b, d, int64(m*sh.n*dt.Size()))
					defer x.Release()
					defer out.Release()
					in := []graph.Spec{{DType: dt, Shape: []int{m, sh.k}}}
					var prim primitives.Primitive = primitives.MatMul{TransposeB: true}
					outN := sh.n
					if bits == 0 {
						in = append(in, graph.Spec{DType: dt, Shape: []int{sh.n, sh.k}})
					} else {
						prim = primitives.QuantizedMatMul{Bits: bits, GroupSize: group}
						if sh.gated {
							prim, outN = primitives.QuantizedMatMulSiLUMul{Bits: bits, GroupSize: group}, sh.n/2
						}
						in = append(in, graph.Spec{DType: graph.Uint32, Shape: []int{sh.n, sh.k * bits / 32}},
							graph.Spec{DType: dt, Shape: []int{sh.n, sh.k / group}}, graph.Spec{DType: dt, Shape: []int{sh.n, sh.k / group}})
					}
					l := primitives.NewLowering(in, []graph.Spec{{DType: dt, Shape: []int{m, outN}}}, d.Caps())
					if err := prim.Lower(l); err != nil {
						b.Fatal(err)
					}
					if len(l.Dispatches) != 1 {
						b.Skipf("%d dispatches", len(l.Dispatches))
					}
					disp := l.Dispatches[0]
					if g, err := strconv.Atoi(os.Getenv("LOOM_MATMUL_GRID")); err == nil && bits != 0 {
						disp.Grid.X = g
					}
					k, err := d.Kernel(disp.Kernel)
					if err != nil {
						b.Fatal(err)
					}
					spec, _ := primitives.LookupKernel(disp.Kernel)
					reps := max(sets, 8)
					record := func(pass *runtime.CommandList) {
						for i := range reps {
							args := []runtime.BufferArg{{Buffer: x, Size: x.Len(), Access: primitives.Read, Name: spec.Args[0].Name}}
							for j, s := range sizes {
								args = append(args, runtime.BufferArg{Buffer: ws[i%sets][j], Size: s, Access: primitives.Read, Name: spec.Args[1+j].Name})
							}
							args = append(args, runtime.BufferArg{Buffer: out, Size: out.Len(), Access: primitives.Write, Name: spec.Args[len(spec.Args)-1].Name})
							pass.Dispatch(k, disp.Grid, disp.Group, args, disp.Params, disp.SharedBytes)
						}
					}
					best, _ := kt.best(b, record)
					s := best.Seconds() / float64(reps)
					gbs := float64(wBytes) / s / 1e9
					b.ReportMetric(s*1e6, "µs/kernel")
					b.ReportMetric(gbs, "weight-GB/s")
					b.ReportMetric(100*gbs/bw.Read, "read-%")
					b.ReportMetric(float64(disp.Grid.X), "grid-x")
				})
			}
			for _, set := range ws {
				for _, w := range set {
					w.Release()
				}
			}
		}
	}
}
