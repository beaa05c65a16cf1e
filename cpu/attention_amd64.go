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
func attnTokenDotsF32(s []float32, bs int, q, k []float32, kstride, n, hs, group, ahead int)

//go:noescape
func attnTokenDotsF16(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)

//go:noescape
func attnTokenDotsBF16(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)

//go:noescape
func attnTokenDotsF32AVX512(s []float32, bs int, q, k []float32, kstride, n, hs, group, ahead int)

//go:noescape
func attnTokenDotsF16AVX512(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)

//go:noescape
func attnTokenDotsBF16AVX512(s []float32, bs int, q []float32, k []uint16, kstride, n, hs, group, ahead int)

//go:noescape
func attnTokenAxpysF32(o, p []float32, bs int, v []float32, vstride, n, hs, group, ahead int)

//go:noescape
func attnTokenAxpysF16(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)

//go:noescape
func attnTokenAxpysBF16(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)

// tokenDotsAsm runs the assembly token dots for k's dtype, its rows from
// off (prefetching the rows ahead), if the vec package runs its
// assembly and the rows suit it (hs a multiple of 16), and reports whether
// it did: the AVX-512 form, 32 elements a step, where the vec package
// selects it and hs is a multiple of 32 (its sums add the elements in
// another order than the AVX2 form's, so the two agree within rounding).
func tokenDotsAsm(s []float32, bs int, q []float32, k floats, off, kstride, n, hs, group, ahead int) bool {
	if !vec.Assembly() || hs%16 != 0 {
		return false
	}
	wide := vec.AVX512() && hs%32 == 0
	switch {
	case k.dt == graph.Float32 && wide:
		attnTokenDotsF32AVX512(s, bs, q, k.f32[off:], kstride, n, hs, group, ahead)
	case k.dt == graph.Float32:
		attnTokenDotsF32(s, bs, q, k.f32[off:], kstride, n, hs, group, ahead)
	case k.dt == graph.Float16 && wide:
		attnTokenDotsF16AVX512(s, bs, q, k.u16[off:], kstride, n, hs, group, ahead)
	case k.dt == graph.Float16:
		attnTokenDotsF16(s, bs, q, k.u16[off:], kstride, n, hs, group, ahead)
	case wide:
		attnTokenDotsBF16AVX512(s, bs, q, k.u16[off:], kstride, n, hs, group, ahead)
	default:
		attnTokenDotsBF16(s, bs, q, k.u16[off:], kstride, n, hs, group, ahead)
	}
	return true
}

//go:noescape
func attnTokenAxpysF32AVX512(o, p []float32, bs int, v []float32, vstride, n, hs, group, ahead int)

//go:noescape
func attnTokenAxpysF16AVX512(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)

//go:noescape
func attnTokenAxpysBF16AVX512(o, p []float32, bs int, v []uint16, vstride, n, hs, group, ahead int)

// tokenAxpysAsm is tokenDotsAsm for the token axpys (whose AVX-512 form
// adds each key's products to the outputs in the AVX2 form's order: the
// two agree bit for bit).
func tokenAxpysAsm(o, p []float32, bs int, v floats, off, vstride, n, hs, group, ahead int) bool {
	if !vec.Assembly() || hs%16 != 0 {
		return false
	}
	wide := vec.AVX512() && hs%32 == 0
	switch {
	case v.dt == graph.Float32 && wide:
		attnTokenAxpysF32AVX512(o, p, bs, v.f32[off:], vstride, n, hs, group, ahead)
	case v.dt == graph.Float32:
		attnTokenAxpysF32(o, p, bs, v.f32[off:], vstride, n, hs, group, ahead)
	case v.dt == graph.Float16 && wide:
		attnTokenAxpysF16AVX512(o, p, bs, v.u16[off:], vstride, n, hs, group, ahead)
	case v.dt == graph.Float16:
		attnTokenAxpysF16(o, p, bs, v.u16[off:], vstride, n, hs, group, ahead)
	case wide:
		attnTokenAxpysBF16AVX512(o, p, bs, v.u16[off:], vstride, n, hs, group, ahead)
	default:
		attnTokenAxpysBF16(o, p, bs, v.u16[off:], vstride, n, hs, group, ahead)
	}
	return true
}
