package primitives

import (
	"fmt"
	"slices"

	"github.com/loomrt/loom/graph"
)

// The primitives of this file are strided copies (copy_strided, see
// StridedCopyParams): they move elements by their bits, so they serve
// every dtype exactly.

// BroadcastTo copies its input to Shape, which the input's shape broadcasts
// to (NumPy's rules: dimensions of 1 repeat, missing leading dimensions are
// added).
type BroadcastTo struct{ Shape Dims }

func (BroadcastTo) Name() string { return "broadcast_to" }

func (b BroadcastTo) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	shape := b.Shape.Slice()
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("shape %v has negative dimension %d", shape, d)
		}
	}
	got, err := BroadcastShapes(in[0].Shape, shape)
	if err != nil || !slices.Equal(got, shape) {
		return nil, fmt.Errorf("shape %v does not broadcast to %v", in[0].Shape, shape)
	}
	return []graph.Spec{{DType: in[0].DType, Shape: shape}}, nil
}

func (b BroadcastTo) Lower(l *Lowering) error {
	in, out := l.Inputs[0].Shape, l.Outputs[0].Shape
	inStrides := rowMajorStrides(in)
	src := make([]int, len(out))
	off := len(out) - len(in)
	for i, d := range in {
		if d != 1 || out[off+i] == 1 {
			src[off+i] = inStrides[i]
		}
	}
	return addStridedCopy(l, l.Inputs[0].DType, out, In(0), 0, src, Out(0), 0, rowMajorStrides(out))
}

// SliceStrided takes Counts[i] elements of every axis i of its input, from
// Starts[i] in steps of Steps[i] (negative steps walk backward). Every
// element taken must lie in the input: the op normalises Python-style
// bounds (negative indices, clamping) before building it.
type SliceStrided struct{ Starts, Counts, Steps Dims }

func (SliceStrided) Name() string { return "slice_strided" }

func (s SliceStrided) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	shape := in[0].Shape
	if s.Starts.Len != len(shape) || s.Counts.Len != len(shape) || s.Steps.Len != len(shape) {
		return nil, fmt.Errorf("starts, counts and steps must have one entry per axis of the rank-%d input", len(shape))
	}
	out := make([]int, len(shape))
	for i, d := range shape {
		start, count, step := s.Starts.Vals[i], s.Counts.Vals[i], s.Steps.Vals[i]
		last := start + (count-1)*step
		switch {
		case step == 0:
			return nil, fmt.Errorf("axis %d: step 0", i)
		case count < 0:
			return nil, fmt.Errorf("axis %d: negative count %d", i, count)
		case count > 0 && (start < 0 || start >= d || last < 0 || last >= d):
			return nil, fmt.Errorf("axis %d: %d elements from %d in steps of %d leave [0, %d)", i, count, start, step, d)
		}
		out[i] = count
	}
	return []graph.Spec{{DType: in[0].DType, Shape: out}}, nil
}

func (s SliceStrided) Lower(l *Lowering) error {
	strides := rowMajorStrides(l.Inputs[0].Shape)
	out := l.Outputs[0].Shape
	off := 0
	src := make([]int, len(out))
	for i := range out {
		off += s.Starts.Vals[i] * strides[i]
		src[i] = s.Steps.Vals[i] * strides[i]
	}
	return addStridedCopy(l, l.Inputs[0].DType, out, In(0), off, src, Out(0), 0, rowMajorStrides(out))
}

// Pad surrounds its first input with Low[i] elements before and High[i]
// after along every axis i, all equal to its second input, a scalar of the
// first's dtype.
type Pad struct{ Low, High Dims }

func (Pad) Name() string { return "pad" }

func (p Pad) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("needs 2 inputs (a, value), got %d", len(in))
	}
	a, v := in[0], in[1]
	if v.DType != a.DType || len(v.Shape) != 0 {
		return nil, fmt.Errorf("value must be a scalar of a's dtype %s, got %s", a.DType, v)
	}
	if p.Low.Len != len(a.Shape) || p.High.Len != len(a.Shape) {
		return nil, fmt.Errorf("widths must have one pair per axis of the rank-%d input, got %d and %d", len(a.Shape), p.Low.Len, p.High.Len)
	}
	out := make([]int, len(a.Shape))
	for i, d := range a.Shape {
		lo, hi := p.Low.Vals[i], p.High.Vals[i]
		if lo < 0 || hi < 0 {
			return nil, fmt.Errorf("axis %d: widths (%d, %d) must be ≥ 0", i, lo, hi)
		}
		out[i] = d + lo + hi
	}
	return []graph.Spec{{DType: a.DType, Shape: out}}, nil
}

// Lower fills the output with the value (a copy whose source strides are
// all 0), then copies the input into its interior; the runtime orders the
// second write after the first.
func (p Pad) Lower(l *Lowering) error {
	dt, out := l.Inputs[0].DType, l.Outputs[0].Shape
	outStrides := rowMajorStrides(out)
	if err := addStridedCopy(l, dt, out, In(1), 0, make([]int, len(out)), Out(0), 0, outStrides); err != nil {
		return err
	}
	off := 0
	for i, s := range outStrides {
		off += p.Low.Vals[i] * s
	}
	in := l.Inputs[0].Shape
	return addStridedCopy(l, dt, in, In(0), 0, rowMajorStrides(in), Out(0), off, outStrides)
}
