package primitives

import (
	"fmt"
	"math"

	"github.com/loomrt/loom/graph"
)

// RoPEParams describe a rotary embedding of T tokens of H heads of D
// elements.
type RoPEParams struct {
	T, H, D uint32
	Theta   float32
	// Scaling's fields (all 0: none).
	Factor, LowFreqFactor, HighFreqFactor, OriginalMaxPositions float32
}

// RoPEScaling is Llama 3.1's scaling of the inverse frequencies (rope_type
// llama3, as transformers' _compute_llama3_parameters): a frequency f of
// wavelength w = 2π/f above OriginalMaxPositions/LowFreqFactor is divided
// by Factor, one of wavelength below OriginalMaxPositions/HighFreqFactor is
// kept, and those between are blended: (1−s)·f/Factor + s·f with
// s = (OriginalMaxPositions/w − LowFreqFactor)/(HighFreqFactor −
// LowFreqFactor). The zero value is no scaling.
type RoPEScaling struct {
	Factor, LowFreqFactor, HighFreqFactor, OriginalMaxPositions float32
}

// Scale returns the scaled inverse frequency f, in float64 (the CPU's and
// CUDA's precision; Metal's kernel computes the same in float32).
func (s RoPEScaling) Scale(f float64) float64 {
	if s.Factor == 0 {
		return f
	}
	orig, low, high, factor := float64(s.OriginalMaxPositions), float64(s.LowFreqFactor), float64(s.HighFreqFactor), float64(s.Factor)
	w := 2 * math.Pi / f
	switch {
	case w > orig/low:
		return f / factor
	case w >= orig/high:
		sm := (orig/w - low) / (high - low)
		return (1-sm)*f/factor + sm*f
	}
	return f
}

// check reports scaling parameters the formula cannot use.
func (s RoPEScaling) check() error {
	if s == (RoPEScaling{}) {
		return nil
	}
	for _, v := range []float32{s.Factor, s.LowFreqFactor, s.HighFreqFactor, s.OriginalMaxPositions} {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("rope scaling %+v: every field must be finite and > 0", s)
		}
	}
	if !(s.HighFreqFactor > s.LowFreqFactor) {
		return fmt.Errorf("rope scaling %+v: HighFreqFactor must be above LowFreqFactor", s)
	}
	return nil
}

// Scaling is p's frequency scaling.
func (p *RoPEParams) Scaling() RoPEScaling {
	return RoPEScaling{p.Factor, p.LowFreqFactor, p.HighFreqFactor, p.OriginalMaxPositions}
}

// RoPE applies rotary position embeddings in the half-rotation form
// (Llama, Qwen3) to its first input x ([T, H, D], a float dtype) at the
// positions of its second (int32 [T]). For i < D/2, with
// angle = pos · Theta^(−2i/D):
//
//	out[i]     = x[i]·cos(angle) − x[i+D/2]·sin(angle)
//	out[i+D/2] = x[i+D/2]·cos(angle) + x[i]·sin(angle)
//
// D must be even. With Scaling, the inverse frequencies Theta^(−2i/D) are
// scaled first (RoPEScaling).
type RoPE struct {
	Theta   float32
	Scaling RoPEScaling
}

func (RoPE) Name() string { return "rope" }

func (r RoPE) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs (x, positions), got %d", len(in))
	}
	x, pos := in[0], in[1]
	if !hasDType(FloatDTypes, x.DType) {
		return nil, fmt.Errorf("dtype %s is unsupported (supported: %v)", x.DType, FloatDTypes)
	}
	if len(x.Shape) != 3 {
		return nil, fmt.Errorf("x must be [T, H, D], got shape %v", x.Shape)
	}
	if x.Shape[2]%2 != 0 {
		return nil, fmt.Errorf("head dimension D = %d is odd; the half-rotation form needs it even", x.Shape[2])
	}
	if pos.DType != graph.Int32 {
		return nil, fmt.Errorf("positions must be int32, got %s", pos.DType)
	}
	if len(pos.Shape) != 1 || pos.Shape[0] != x.Shape[0] {
		return nil, fmt.Errorf("positions have shape %v, want [%d] (one per token of x)", pos.Shape, x.Shape[0])
	}
	if !(r.Theta > 0) || math.IsInf(float64(r.Theta), 0) {
		return nil, fmt.Errorf("theta %g must be finite and > 0", r.Theta)
	}
	if err := r.Scaling.check(); err != nil {
		return nil, err
	}
	return []graph.Spec{x}, nil
}

func (r RoPE) Lower(l *Lowering) error {
	x := l.Inputs[0]
	if err := checkElements(x.Size()); err != nil {
		return err
	}
	t, h, d := x.Shape[0], x.Shape[1], x.Shape[2]
	l.Dispatch(RoPEKernel(x.DType), Dim3{t * h, 1, 1}, // a group per (token, head)
		Dim3{ElementwiseThreads, 1, 1}, &RoPEParams{T: uint32(t), H: uint32(h), D: uint32(d), Theta: r.Theta,
			Factor: r.Scaling.Factor, LowFreqFactor: r.Scaling.LowFreqFactor, HighFreqFactor: r.Scaling.HighFreqFactor, OriginalMaxPositions: r.Scaling.OriginalMaxPositions},
		In(0), In(1), Out(0))
	return nil
}

// RoPEKernel is RoPE's kernel for x of dtype dt.
func RoPEKernel(dt graph.DType) string { return KernelName("rope", dt) }

func init() {
	for _, dt := range FloatDTypes {
		register(KernelSpec{Name: RoPEKernel(dt), Args: []ArgSpec{R("x"), R("positions"), W("out")}, Params: (*RoPEParams)(nil)})
	}
}
