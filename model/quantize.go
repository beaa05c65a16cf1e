package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Quantized is a matrix [Rows, K] in MLX's affine format (docs/QUANT.md):
// each row's codes packed into Words (K·Bits/32 words a row, lowest bits
// first), and a scale and a bias per group of GroupSize elements of a row
// ([Rows, K/GroupSize], row-major), stored as DType.
type Quantized struct {
	Rows, K         int
	Bits, GroupSize int
	DType           graph.DType
	Words           []uint32
	Scales, Biases  []float32 // the stored values (already rounded to DType)
}

// Quantize converts a float matrix w [rows, k] (row-major) to the affine
// format, scales and biases stored as dt. Per group of groupSize: bias =
// min, scale = (max − min)/(2^bits − 1), both rounded to dt first, then
// q = round((w − bias)/scale) clamped to [0, 2^bits − 1] (0 where the
// scale is 0: a constant group is its bias exactly).
func Quantize(w []float32, rows, k int, dt graph.DType, bits, groupSize int) (*Quantized, error) {
	if !slices.Contains(primitives.QuantBits, bits) || !slices.Contains(primitives.QuantGroupSizes, groupSize) {
		return nil, fmt.Errorf("quantize: %d bits, group size %d: unsupported (4 or 8 bits; groups of 32, 64 or 128)", bits, groupSize)
	}
	if !dt.IsFloat() {
		return nil, fmt.Errorf("quantize: scales dtype %s is not a float dtype", dt)
	}
	if rows < 0 || k <= 0 || k%groupSize != 0 || len(w) != rows*k {
		return nil, fmt.Errorf("quantize: a [%d, %d] matrix of %d values: rows must be a non-empty multiple of the group size %d", rows, k, len(w), groupSize)
	}
	groups, per := k/groupSize, 32/bits
	q := &Quantized{Rows: rows, K: k, Bits: bits, GroupSize: groupSize, DType: dt,
		Words: make([]uint32, rows*k/per), Scales: make([]float32, rows*groups), Biases: make([]float32, rows*groups)}
	top := float64(int(1)<<bits - 1)
	for g := range rows * groups {
		vals := w[g*groupSize : (g+1)*groupSize]
		lo, hi := slices.Min(vals), slices.Max(vals)
		if math.IsNaN(float64(lo)) || math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) || slices.ContainsFunc(vals, func(v float32) bool { return v != v }) {
			return nil, fmt.Errorf("quantize: row %d, group %d holds a NaN or an infinity", g/groups, g%groups)
		}
		bias := roundTo(dt, lo)
		scale := roundTo(dt, float32((float64(hi)-float64(lo))/top))
		q.Scales[g], q.Biases[g] = scale, bias
		for i, v := range vals {
			code := 0.0
			if scale != 0 {
				code = min(max(math.RoundToEven((float64(v)-float64(bias))/float64(scale)), 0), top)
			}
			e := g*groupSize + i
			q.Words[e/per] |= uint32(code) << (bits * (e % per))
		}
	}
	return q, nil
}

// roundTo rounds v to dt's precision.
func roundTo(dt graph.DType, v float32) float32 {
	b := make([]byte, dt.Size())
	graph.PutFloat32s(dt, b, []float32{v})
	return float32(graph.DecodeFloat64s(dt, b)[0])
}

// Dequantized returns the matrix the format stands for, scale·q + bias
// per element in float64: the reference the kernels are tested against.
func (q *Quantized) Dequantized() []float64 {
	out := make([]float64, q.Rows*q.K)
	per, mask := 32/q.Bits, uint32(1)<<q.Bits-1
	for e := range out {
		code := q.Words[e/per] >> (q.Bits * (e % per)) & mask
		g := e / q.GroupSize
		out[e] = float64(q.Scales[g])*float64(code) + float64(q.Biases[g])
	}
	return out
}

// Arrays returns the packed words [Rows, K·Bits/32] (uint32) and the
// scales and biases [Rows, K/GroupSize] (DType) as constants.
func (q *Quantized) Arrays() (w, scales, biases *graph.Array) {
	groups := q.K / q.GroupSize
	return graph.FromUint32s(q.Words, q.Rows, q.K*q.Bits/32),
		graph.FromFloat32sAs(q.DType, q.Scales, q.Rows, groups), graph.FromFloat32sAs(q.DType, q.Biases, q.Rows, groups)
}
