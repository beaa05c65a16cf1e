package cpu

import (
	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
)

// The block kernels of paged attention (attention_amd64.s) trust their
// arguments: every row they address lies in k or v, and len(q) and len(o)
// are positive multiples of 8. blockScores and blockValues check the rows
// before calling them through scoresAsm and valuesAsm.

//go:noescape
func attnScoresF32(s, q, k []float32, stride int)

//go:noescape
func attnValuesF32(o, p, v []float32, stride int)

// scoresAsm runs the assembly scores kernel if the vec package runs its
// assembly (the CPU has AVX2 and FMA) and the rows suit it, and reports
// whether it did.
func scoresAsm(s, q, k []float32, stride int) bool {
	if !vec.Assembly() || len(q)%8 != 0 {
		return false
	}
	attnScoresF32(s, q, k, stride)
	return true
}

// valuesAsm is scoresAsm for the values kernel.
func valuesAsm(o, p, v []float32, stride int) bool {
	if !vec.Assembly() || len(o)%8 != 0 {
		return false
	}
	attnValuesF32(o, p, v, stride)
	return true
}

//go:noescape
func attnExp2Sum(s []float32, m float32) float32

// exp2SumAsm runs attnExp2Sum over s, whose length is a multiple of 8, if
// the vec package runs its assembly, and reports whether it did.
func exp2SumAsm(s []float32, m float32) (float32, bool) {
	if !vec.Assembly() {
		return 0, false
	}
	return attnExp2Sum(s, m), true
}

//go:noescape
func attnRowDots(s []float32, stride int, q, k []float32, hs, group int)

//go:noescape
func attnRowDotsF16(s []float32, stride int, q []float32, k []uint16, hs, group int)

//go:noescape
func attnRowDotsBF16(s []float32, stride int, q []float32, k []uint16, hs, group int)

//go:noescape
func attnRowAxpys(o, p []float32, stride int, v []float32, hs, group int)

//go:noescape
func attnRowAxpysF16(o, p []float32, stride int, v []uint16, hs, group int)

//go:noescape
func attnRowAxpysBF16(o, p []float32, stride int, v []uint16, hs, group int)

// rowDotsAsm runs the assembly row dots for k's dtype, its rows from off,
// if the vec package runs its assembly and the rows suit it, and reports
// whether it did.
func rowDotsAsm(s []float32, stride int, q []float32, k floatRows, off, hs, group int) bool {
	if !vec.Assembly() || hs%8 != 0 {
		return false
	}
	switch k.dt {
	case graph.Float32:
		attnRowDots(s, stride, q, k.f32[off:], hs, group)
	case graph.Float16:
		attnRowDotsF16(s, stride, q, k.u16[off:], hs, group)
	default:
		attnRowDotsBF16(s, stride, q, k.u16[off:], hs, group)
	}
	return true
}

// rowAxpysAsm is rowDotsAsm for the row axpys.
func rowAxpysAsm(o, p []float32, stride int, v floatRows, off, hs, group int) bool {
	if !vec.Assembly() || hs%8 != 0 {
		return false
	}
	switch v.dt {
	case graph.Float32:
		attnRowAxpys(o, p, stride, v.f32[off:], hs, group)
	case graph.Float16:
		attnRowAxpysF16(o, p, stride, v.u16[off:], hs, group)
	default:
		attnRowAxpysBF16(o, p, stride, v.u16[off:], hs, group)
	}
	return true
}
