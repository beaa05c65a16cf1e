package primitives

import (
	"fmt"

	"github.com/loomrt/loom/graph"
)

// Dims is a list of at most MaxRank integers (a shape, a permutation, slice
// bounds) held by value, so that the primitives that carry one stay
// comparable.
type Dims struct {
	Len  int
	Vals [MaxRank]int
}

// NewDims returns v as Dims, or an error if it has more than MaxRank
// entries.
func NewDims(v []int) (Dims, error) {
	var d Dims
	if err := checkRank(v); err != nil {
		return d, err
	}
	d.Len = copy(d.Vals[:], v)
	return d, nil
}

// Slice returns the entries as a new slice.
func (d Dims) Slice() []int { return append([]int{}, d.Vals[:d.Len]...) }

// rowMajorStrides returns the element strides of a dense array of shape.
func rowMajorStrides(shape []int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// Reshape gives its input a new shape with the same number of elements. At
// most one dimension may be -1: it is inferred. The output is a view of the
// input's buffer: no data moves.
type Reshape struct{ Shape Dims }

func (Reshape) Name() string { return "reshape" }

func (r Reshape) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	shape := r.Shape.Slice()
	infer, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer >= 0:
			return nil, fmt.Errorf("shape %v has more than one -1", shape)
		case d == -1:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("shape %v has negative dimension %d", shape, d)
		default:
			known *= d
		}
	}
	size := in[0].Size()
	if infer >= 0 {
		if known == 0 || size%known != 0 {
			return nil, fmt.Errorf("cannot infer the -1 of shape %v for %d elements", shape, size)
		}
		shape[infer] = size / known
		known = size
	}
	if known != size {
		return nil, fmt.Errorf("shape %v has %d elements, the input %d", shape, known, size)
	}
	return []graph.Spec{{DType: in[0].DType, Shape: shape}}, nil
}

// Aliases makes the output a view of the input.
func (Reshape) Aliases() []graph.Alias { return []graph.Alias{{Output: 0, Input: 0}} }

// Lower adds nothing: a view needs no work.
func (Reshape) Lower(*Lowering) error { return nil }

// Transpose permutes the axes of its input: output axis i is input axis
// Perm[i].
type Transpose struct{ Perm Dims }

func (Transpose) Name() string { return "transpose" }

func (t Transpose) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	perm, rank := t.Perm.Slice(), len(in[0].Shape)
	if len(perm) != rank {
		return nil, fmt.Errorf("permutation %v has %d axes, the input %d", perm, len(perm), rank)
	}
	seen := make([]bool, rank)
	shape := make([]int, rank)
	for i, p := range perm {
		if p < 0 || p >= rank || seen[p] {
			return nil, fmt.Errorf("%v is not a permutation of the axes 0..%d", perm, rank-1)
		}
		seen[p] = true
		shape[i] = in[0].Shape[p]
	}
	return []graph.Spec{{DType: in[0].DType, Shape: shape}}, nil
}

func (t Transpose) Lower(l *Lowering) error {
	inStrides := rowMajorStrides(l.Inputs[0].Shape)
	out := l.Outputs[0].Shape
	src := make([]int, len(out))
	for i, p := range t.Perm.Slice() {
		src[i] = inStrides[p]
	}
	return addStridedCopy(l, l.Inputs[0].DType, out, In(0), 0, src, Out(0), 0, rowMajorStrides(out))
}

// Slice takes the elements [Starts[i], Ends[i]) of every axis i of its
// input, with step 1. Bounds outside the input are an error, not clamped.
type Slice struct{ Starts, Ends Dims }

func (Slice) Name() string { return "slice" }

func (s Slice) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input, got %d", len(in))
	}
	shape := in[0].Shape
	starts, ends := s.Starts.Slice(), s.Ends.Slice()
	if len(starts) != len(shape) || len(ends) != len(shape) {
		return nil, fmt.Errorf("starts %v and ends %v must have one entry per axis of the rank-%d input", starts, ends, len(shape))
	}
	out := make([]int, len(shape))
	for i := range shape {
		if starts[i] < 0 || starts[i] > ends[i] || ends[i] > shape[i] {
			return nil, fmt.Errorf("axis %d: range [%d, %d) is not within [0, %d)", i, starts[i], ends[i], shape[i])
		}
		out[i] = ends[i] - starts[i]
	}
	return []graph.Spec{{DType: in[0].DType, Shape: out}}, nil
}

func (s Slice) Lower(l *Lowering) error {
	strides := rowMajorStrides(l.Inputs[0].Shape)
	off := 0
	for i, st := range s.Starts.Slice() {
		off += st * strides[i]
	}
	out := l.Outputs[0].Shape
	return addStridedCopy(l, l.Inputs[0].DType, out, In(0), off, strides, Out(0), 0, rowMajorStrides(out))
}

// Concatenate joins its inputs along Axis (negative counts from the end).
// They must have one dtype and the same shape except along Axis.
type Concatenate struct{ Axis int }

func (Concatenate) Name() string { return "concatenate" }

func (c Concatenate) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("needs at least 1 input")
	}
	first := in[0]
	axis, err := normAxis(c.Axis, len(first.Shape))
	if err != nil {
		return nil, err
	}
	shape := append([]int{}, first.Shape...)
	for i, s := range in[1:] {
		if s.DType != first.DType {
			return nil, fmt.Errorf("input %d has dtype %s, input 0 %s", i+1, s.DType, first.DType)
		}
		if len(s.Shape) != len(first.Shape) {
			return nil, fmt.Errorf("input %d has rank %d, input 0 rank %d", i+1, len(s.Shape), len(first.Shape))
		}
		for d := range s.Shape {
			if d != axis && s.Shape[d] != first.Shape[d] {
				return nil, fmt.Errorf("input %d has shape %v, input 0 %v: they differ on axis %d, not only on the concatenation axis %d",
					i+1, s.Shape, first.Shape, d, axis)
			}
		}
		shape[axis] += s.Shape[axis]
	}
	return []graph.Spec{{DType: first.DType, Shape: shape}}, nil
}

// Lower copies each input into its part of the output with one dispatch,
// which writes exactly that part when the axis is the outermost non-trivial
// one, and otherwise the range from its first to its last element.
func (c Concatenate) Lower(l *Lowering) error {
	out := l.Outputs[0].Shape
	axis, err := normAxis(c.Axis, len(out))
	if err != nil {
		return err
	}
	outer, inner := graph.NumElements(out[:axis]), graph.NumElements(out[axis+1:])
	at := 0
	for i, s := range l.Inputs {
		n := s.Shape[axis] * inner
		err := addStridedCopy(l, s.DType, []int{outer, n}, In(i), 0, []int{n, 1}, Out(0), at, []int{out[axis] * inner, 1})
		if err != nil {
			return err
		}
		at += n
	}
	return nil
}

// StridedCopyParams describe a copy of the N elements of an index space of
// shape Shape[:Rank]: element (i0, i1, …) is read at SrcBase + Σ i_d·Src[d]
// of the source argument and written at DstBase + Σ i_d·Dst[d] of the
// destination argument. Strides may be negative (a reversed slice) or 0 (a
// broadcast); each argument is bound at its lowest element that the copy
// touches, and the bases count from there, so every index is in
// [0, span). Kernels may compute indices modulo 2^32.
type StridedCopyParams struct {
	N, Rank          uint32
	SrcBase, DstBase uint32
	Shape            [MaxRank]uint32
	Src, Dst         [MaxRank]int32
}

// addStridedCopy adds a copy_strided dispatch over the index space shape,
// from src at element offset srcOff with srcStrides, to dst at dstOff with
// dstStrides (the offsets are those of element (0, 0, …); strides may be
// negative). Each argument's range is exactly the span from its lowest
// element to its highest. An empty copy adds nothing.
func addStridedCopy(l *Lowering, dt graph.DType, shape []int, src Ref, srcOff int, srcStrides []int, dst Ref, dstOff int, dstStrides []int) error {
	n := graph.NumElements(shape)
	if n == 0 {
		return nil
	}
	// Merge each axis into the next inner one where both sides are
	// contiguous across them, and drop axes of size 1: a contiguous slice
	// becomes a plain 1-D copy.
	var sh, ss, ds []int
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] == 1 {
			continue
		}
		if k := len(sh) - 1; k >= 0 && ss[k]*sh[k] == srcStrides[d] && ds[k]*sh[k] == dstStrides[d] {
			sh[k] *= shape[d]
			continue
		}
		sh, ss, ds = append(sh, shape[d]), append(ss, srcStrides[d]), append(ds, dstStrides[d])
	}
	if len(sh) == 0 {
		sh, ss, ds = []int{1}, []int{1}, []int{1}
	}
	p := &StridedCopyParams{N: uint32(n), Rank: uint32(len(sh))}
	srcLo, srcHi, dstLo, dstHi := 0, 0, 0, 0 // the extreme elements, relative to element (0, 0, …)
	for i := range sh {
		d := len(sh) - 1 - i
		p.Shape[d], p.Src[d], p.Dst[d] = uint32(sh[i]), int32(ss[i]), int32(ds[i])
		if ss[i] < 0 {
			srcLo += (sh[i] - 1) * ss[i]
		} else {
			srcHi += (sh[i] - 1) * ss[i]
		}
		if ds[i] < 0 {
			dstLo += (sh[i] - 1) * ds[i]
		} else {
			dstHi += (sh[i] - 1) * ds[i]
		}
		if ss[i] != int(p.Src[d]) || ds[i] != int(p.Dst[d]) {
			return fmt.Errorf("strides %d and %d are unsupported (the limit is ±2^31)", ss[i], ds[i])
		}
	}
	srcSpan, dstSpan := srcHi-srcLo+1, dstHi-dstLo+1
	if err := checkElements(max(n, srcSpan, dstSpan)); err != nil {
		return err
	}
	p.SrcBase, p.DstBase = uint32(-srcLo), uint32(-dstLo)
	es := int64(dt.Size())
	d := l.Dispatch(StridedCopyKernel(dt), Dim3{Groups(n, ElementwiseThreads), 1, 1}, Dim3{ElementwiseThreads, 1, 1}, p, src, dst)
	d.Args[0].Offset, d.Args[0].Size = int64(srcOff+srcLo)*es, int64(srcSpan)*es
	d.Args[1].Offset, d.Args[1].Size = int64(dstOff+dstLo)*es, int64(dstSpan)*es
	return nil
}

// StridedCopyKernel is the strided copy's kernel for elements of dtype dt.
func StridedCopyKernel(dt graph.DType) string { return KernelName("copy_strided", dt) }

func init() {
	for _, dt := range graph.DTypes {
		register(KernelSpec{Name: StridedCopyKernel(dt), Args: []ArgSpec{R("src"), W("dst")}, Params: (*StridedCopyParams)(nil)})
	}
}
