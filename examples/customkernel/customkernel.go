// Package customkernel is a primitive defined outside Loom's core
// packages, with its own kernels for every backend: a residual add fused
// with the RMS normalisation that follows it, the pair that opens each
// half of a pre-norm transformer block. README.md is the guide to writing
// one.
package customkernel

import (
	_ "embed"
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// ResidualRMSNormParams are the kernels' params: Rows rows of D elements,
// and eps. Every field is 4 bytes, so the struct has one layout in Go,
// CUDA C and MSL; the GPU devices declare it before the kernels' sources
// under its Go name.
type ResidualRMSNormParams struct {
	Rows, D uint32
	Eps     float32
}

// Threads is the kernels' threadgroup size: a power of two, for the
// reduction tree in the GPU kernels.
const Threads = 256

// Kernel is the kernel's name: the catalog's key, and the function the
// CUDA and MSL sources define.
const Kernel = "example_residual_rms_norm_f32"

//go:embed residual_rms_norm.cu
var cudaSource string

//go:embed residual_rms_norm.metal
var mslSource string

// Spec is the kernel's catalog entry: its buffer arguments in binding
// order with their access modes, its params type and its GPU sources.
var Spec = primitives.KernelSpec{
	Name: Kernel,
	Args: []primitives.ArgSpec{
		primitives.R("x"), primitives.R("residual"), primitives.R("weight"),
		primitives.W("sum"), primitives.W("out"),
	},
	Params: (*ResidualRMSNormParams)(nil),
	CUDA:   primitives.Source{File: "residual_rms_norm.cu", Text: cudaSource},
	MSL:    primitives.Source{File: "residual_rms_norm.metal", Text: mslSource},
}

func init() {
	if err := primitives.Register(Spec); err != nil {
		panic(err)
	}
	if err := cpu.Register(Kernel, cpuKernel); err != nil {
		panic(err)
	}
}

// ResidualRMSNorm is the primitive: inputs x and residual (float32, one
// shape [..., D]) and weight (float32 [D]); output 0 is sum = x +
// residual, output 1 is sum / sqrt(mean(sum²) + Eps) · weight over the
// last axis. The mean is accumulated in float32 by the GPU kernels and in
// float64 by the CPU kernel.
type ResidualRMSNorm struct{ Eps float32 }

// Name is the op's name in errors and statistics.
func (ResidualRMSNorm) Name() string { return "residual_rms_norm" }

// NumOutputs is 2: the sum, and its normalisation.
func (ResidualRMSNorm) NumOutputs() int { return 2 }

// Outputs checks the inputs and returns the outputs' specs.
func (r ResidualRMSNorm) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("needs 3 inputs (x, residual, weight), got %d", len(in))
	}
	x, res, w := in[0], in[1], in[2]
	for _, s := range in {
		if s.DType != graph.Float32 {
			return nil, fmt.Errorf("dtype %s is unsupported (float32 only)", s.DType)
		}
	}
	if len(x.Shape) == 0 {
		return nil, fmt.Errorf("x must have at least 1 dimension, got a scalar")
	}
	if !slices.Equal(res.Shape, x.Shape) {
		return nil, fmt.Errorf("residual %s differs from x %s", res, x)
	}
	d := x.Shape[len(x.Shape)-1]
	if len(w.Shape) != 1 || w.Shape[0] != d {
		return nil, fmt.Errorf("weight %s must be [%d] (x's last dimension)", w, d)
	}
	if x.Size() > math.MaxUint32 {
		return nil, fmt.Errorf("x has %d elements: unsupported, the most is 2^32-1", x.Size())
	}
	if !(r.Eps >= 0) || math.IsInf(float64(r.Eps), 0) {
		return nil, fmt.Errorf("eps %g must be finite and ≥ 0", r.Eps)
	}
	return []graph.Spec{x, x}, nil
}

// Lower emits one dispatch: a threadgroup per row.
func (r ResidualRMSNorm) Lower(l *primitives.Lowering) error {
	x := l.Inputs[0]
	d := x.Shape[len(x.Shape)-1]
	rows := 0
	if d > 0 {
		rows = x.Size() / d
	}
	l.Dispatch(Kernel, primitives.Dim3{X: rows, Y: 1, Z: 1}, primitives.Dim3{X: Threads, Y: 1, Z: 1},
		&ResidualRMSNormParams{Rows: uint32(rows), D: uint32(d), Eps: r.Eps},
		primitives.In(0), primitives.In(1), primitives.In(2), primitives.Out(0), primitives.Out(1))
	return nil
}

// Apply adds the op to the graph: it returns sum = x + residual and its
// RMS normalisation scaled by weight.
func Apply(x, residual, weight *graph.Array, eps float32) (sum, out *graph.Array) {
	outs := ops.Apply(ResidualRMSNorm{Eps: eps}, x, residual, weight)
	return outs[0], outs[1]
}

// cpuKernel is the CPU kernel. Each row is one piece of work with a fixed
// order of accumulation, so the result does not depend on the number of
// workers.
func cpuKernel(c *cpu.Call) error {
	p := c.Params.(*ResidualRMSNormParams)
	rows, d := int(p.Rows), int(p.D)
	x, res, w, sum, out := c.F32(0), c.F32(1), c.F32(2), c.F32(3), c.F32(4)
	if n := rows * d; len(x) < n || len(res) < n || len(sum) < n || len(out) < n || len(w) < d {
		return fmt.Errorf("%s: buffers too small for %d rows of %d", Kernel, rows, d)
	}
	c.Parallel(rows, max(1, 1<<14/max(d, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xs, rs, ss, os := x[r*d:(r+1)*d], res[r*d:(r+1)*d], sum[r*d:(r+1)*d], out[r*d:(r+1)*d]
			var sq float64
			for i := range ss {
				ss[i] = xs[i] + rs[i]
				sq += float64(ss[i]) * float64(ss[i])
			}
			inv := float32(1 / math.Sqrt(sq/float64(d)+float64(p.Eps)))
			for i, s := range ss {
				os[i] = s * inv * w[i]
			}
		}
	})
	return nil
}
