package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// The decode-step kernels, called directly (no runtime) on the rows of a
// Qwen3-0.6B-sized model: hidden 1024, MLP 3072, 16 query heads of 128,
// vocabulary 151936. GB/s counts the bytes read and written once.

// benchArg returns n elements of dtype dt of random float values.
func benchArg(dt graph.DType, n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*4 - 2
	}
	b := make([]byte, n*dt.Size())
	graph.PutFloat32s(dt, b, v)
	return b
}

func benchKernel(b *testing.B, name string, params any, bytes int, args ...[]byte) {
	k, ok := Lookup(name)
	if !ok {
		b.Fatalf("no kernel %s", name)
	}
	c := &Call{Params: params, workers: 1}
	for _, a := range args {
		c.Args = append(c.Args, Arg{Bytes: a})
	}
	b.ReportAllocs()
	b.SetBytes(int64(bytes))
	for b.Loop() {
		if err := k(c); err != nil {
			b.Fatal(err)
		}
	}
}

var benchDTypes = []graph.DType{graph.Float32, graph.BFloat16, graph.Float16}

func contiguous(n int) *primitives.ElementwiseParams {
	p, err := primitives.NewElementwiseParams([]int{n}, []int{n}, []int{n})
	if err != nil {
		panic(err)
	}
	return p
}

func BenchmarkDecodeKernels(b *testing.B) {
	const hidden, mlp, heads, head, vocab = 1024, 3072, 16, 128, 151936
	for _, dt := range benchDTypes {
		es := dt.Size()
		b.Run(fmt.Sprintf("add_%s/%d", dt.Short(), hidden), func(b *testing.B) {
			benchKernel(b, "add_"+dt.Short(), contiguous(hidden), 3*hidden*es, benchArg(dt, hidden), benchArg(dt, hidden), benchArg(dt, hidden))
		})
		b.Run(fmt.Sprintf("mul_%s/%d", dt.Short(), mlp), func(b *testing.B) {
			benchKernel(b, "mul_"+dt.Short(), contiguous(mlp), 3*mlp*es, benchArg(dt, mlp), benchArg(dt, mlp), benchArg(dt, mlp))
		})
		b.Run(fmt.Sprintf("silu_%s/%d", dt.Short(), mlp), func(b *testing.B) {
			benchKernel(b, "silu_"+dt.Short(), contiguous(mlp), 2*mlp*es, benchArg(dt, mlp), benchArg(dt, mlp))
		})
		b.Run(fmt.Sprintf("rms_norm_%s/1x%d", dt.Short(), hidden), func(b *testing.B) {
			p := &primitives.RMSNormParams{Rows: 1, D: hidden, Eps: 1e-6}
			benchKernel(b, "rms_norm_"+dt.Short(), p, 3*hidden*es, benchArg(dt, hidden), benchArg(dt, hidden), benchArg(dt, hidden))
		})
		b.Run(fmt.Sprintf("rms_norm_%s/%dx%d", dt.Short(), heads, head), func(b *testing.B) {
			p := &primitives.RMSNormParams{Rows: heads, D: head, Eps: 1e-6}
			benchKernel(b, "rms_norm_"+dt.Short(), p, (2*heads*head+head)*es, benchArg(dt, heads*head), benchArg(dt, head), benchArg(dt, heads*head))
		})
		b.Run(fmt.Sprintf("rope_%s/1x%dx%d", dt.Short(), heads, head), func(b *testing.B) {
			p := &primitives.RoPEParams{T: 1, H: heads, D: head, Theta: 1e6}
			benchKernel(b, "rope_"+dt.Short(), p, 2*heads*head*es, benchArg(dt, heads*head), make([]byte, 4), benchArg(dt, heads*head))
		})
		b.Run(fmt.Sprintf("softmax_%s/%d", dt.Short(), vocab), func(b *testing.B) {
			p := &primitives.AxisParams{Outer: 1, N: vocab, Inner: 1}
			benchKernel(b, "softmax_"+dt.Short(), p, 2*vocab*es, benchArg(dt, vocab), benchArg(dt, vocab))
		})
	}
}

// BenchmarkGatedGEMV times the gated GEMV of the Qwen3-0.6B MLP (x [M,
// 1024], gate and up [2·3072, 1024]) against the chain it replaces, the
// matmul into a scratch buffer then silu_mul, on one worker. Bytes are the
// weights read.
func BenchmarkGatedGEMV(b *testing.B) {
	const hidden, mlp = 1024, 3072
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16} {
		for _, m := range []int{1, 8} {
			es := dt.Size()
			x, w := benchArg(dt, m*hidden), benchArg(dt, 2*mlp*hidden)
			out, scratch := make([]byte, m*mlp*es), make([]byte, 2*m*mlp*es)
			b.Run(fmt.Sprintf("fused_%s/M=%d", dt.Short(), m), func(b *testing.B) {
				p := &primitives.MatMulSiLUMulParams{M: uint32(m), N: mlp, K: hidden}
				benchKernel(b, primitives.MatMulSiLUMulKernel(dt), p, 2*mlp*hidden*es, x, w, out)
			})
			b.Run(fmt.Sprintf("chain_%s/M=%d", dt.Short(), m), func(b *testing.B) {
				mm, _ := Lookup("matmul_" + dt.Short() + "_gemv")
				sm, _ := Lookup("silu_mul_" + dt.Short())
				mc := &Call{Params: &primitives.MatMulParams{M: uint32(m), N: 2 * mlp, K: hidden, Batch: 1, TransposeB: 1}, workers: 1,
					Args: []Arg{{Bytes: x}, {Bytes: w}, {Bytes: scratch}}}
				sc := &Call{Params: &primitives.SiLUMulParams{Rows: uint32(m), N: mlp}, workers: 1, Args: []Arg{{Bytes: scratch}, {Bytes: out}}}
				b.SetBytes(int64(2 * mlp * hidden * es))
				for b.Loop() {
					if err := mm(mc); err != nil {
						b.Fatal(err)
					}
					if err := sm(sc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
