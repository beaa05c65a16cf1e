// Package loombench times Loom's kernels through the runtime, for the
// `loom bench` commands and for the comparisons with other libraries under
// bench/peers, so that every figure is measured the same way.
package loombench

import (
	"cmp"
	"slices"
	"time"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// Timing is the best and the median of a function's timed runs.
type Timing struct {
	Best, Median time.Duration
}

// Median sorts v and returns its middle element (the upper one of an even
// count); v must not be empty.
func Median[T cmp.Ordered](v []T) T {
	slices.Sort(v)
	return v[len(v)/2]
}

// Interleaved times the functions reps times each, after one warm-up run
// each, taking turns (one run of each per round) so that a change in the
// machine's load during the measurement affects them alike.
func Interleaved(reps int, fs ...func() error) ([]Timing, error) {
	runs := make([][]time.Duration, len(fs))
	for round := -1; round < reps; round++ {
		for i, f := range fs {
			start := time.Now()
			if err := f(); err != nil {
				return nil, err
			}
			if round >= 0 {
				runs[i] = append(runs[i], time.Since(start))
			}
		}
	}
	out := make([]Timing, len(fs))
	for i, r := range runs {
		out[i] = Timing{Median: Median(r), Best: r[0]} // Median sorted r
	}
	return out, nil
}

// Operand returns a random array of the given dtype and shape, evaluated on
// rt so that timed Evals do not upload it.
func Operand(rt *runtime.Runtime, dt graph.DType, seed uint64, shape ...int) (*graph.Array, error) {
	v := make([]float32, graph.NumElements(shape))
	x := seed | 1
	for i := range v {
		x ^= x << 13 // xorshift: fast, and the values only need to be varied
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(x>>40)/(1<<24)*2 - 1
	}
	a := graph.FromFloat32sAs(dt, v, shape...)
	return a, rt.Eval(a)
}

// MatMul returns a function that evaluates the product a[m, k] · b on rt,
// where b is [k, n], or [n, k] (linear-layer weights) when transB; the
// operands are random and already on the device. With m = 1 it is the
// decode GEMV.
func MatMul(rt *runtime.Runtime, dt graph.DType, m, n, k int, transB bool) (func() error, error) {
	a, err := Operand(rt, dt, 1, m, k)
	if err != nil {
		return nil, err
	}
	bShape := []int{k, n}
	if transB {
		bShape = []int{n, k}
	}
	b, err := Operand(rt, dt, 2, bShape...)
	if err != nil {
		return nil, err
	}
	return func() error { return rt.Eval(ops.MatMulTransposed(a, b, false, transB)) }, nil
}

// QuantizedMatMul returns a function that evaluates x[m, k] · dequant(W)ᵀ
// on rt for random weights W [n, k] of bits-bit codes in groups of
// groupSize with scales and biases of dtype dt (ops.QuantizedMatMul), and
// the bytes of the weights: the packed codes plus the scales and biases.
func QuantizedMatMul(rt *runtime.Runtime, dt graph.DType, bits, groupSize, m, n, k int) (func() error, int64, error) {
	x, err := Operand(rt, dt, 1, m, k)
	if err != nil {
		return nil, 0, err
	}
	q, err := QuantizedOperands(rt, dt, bits, groupSize, n, k, 7)
	if err != nil {
		return nil, 0, err
	}
	return func() error { return rt.Eval(q.MatMul(x)) }, q.Bytes(), nil
}

// Quantized are the operands of a quantized matmul's weights.
type Quantized struct {
	W, Scales, Biases *graph.Array
	Bits, GroupSize   int
}

// QuantizedOperands returns random weights [n, k] of bits-bit codes in
// groups of groupSize with scales and biases of dtype dt (codes from seed),
// evaluated on rt.
func QuantizedOperands(rt *runtime.Runtime, dt graph.DType, bits, groupSize, n, k int, seed uint64) (Quantized, error) {
	words := make([]uint32, n*k*bits/32)
	s := seed | 1
	for i := range words {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		words[i] = uint32(s >> 32)
	}
	q := Quantized{W: graph.FromUint32s(words, n, k*bits/32), Bits: bits, GroupSize: groupSize}
	if err := rt.Eval(q.W); err != nil {
		return Quantized{}, err
	}
	var err error
	if q.Scales, err = Operand(rt, dt, seed+3, n, k/groupSize); err != nil {
		return Quantized{}, err
	}
	q.Biases, err = Operand(rt, dt, seed+4, n, k/groupSize)
	return q, err
}

// MatMul is x · dequant(W)ᵀ.
func (q Quantized) MatMul(x *graph.Array) *graph.Array {
	return ops.QuantizedMatMul(x, q.W, q.Scales, q.Biases, q.GroupSize, q.Bits)
}

// Bytes is the weights' bytes: the packed codes plus the scales and biases.
func (q Quantized) Bytes() int64 {
	return q.W.Spec().Bytes() + q.Scales.Spec().Bytes() + q.Biases.Spec().Bytes()
}
