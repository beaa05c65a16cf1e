package graph

import "math"

// F32ToF16 converts f to IEEE 754 binary16 bits, rounding to nearest even.
// Values too large become ±Inf; NaN stays NaN (quiet, sign kept).
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	case exp > 142: // 2^16 and up overflows even before rounding
		return sign | 0x7c00
	case exp >= 113: // normal half: biased exponent 1..30
		h := uint32(exp-112)<<10 | mant>>13
		rest := mant & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, up to Inf: that is the correct rounding
		}
		return sign | uint16(h)
	case exp >= 102: // subnormal half
		m := mant | 0x800000
		shift := uint32(126 - exp) // 14..24
		h := m >> shift
		rest := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	default: // rounds to zero
		return sign
	}
}

// F16ToF32 converts IEEE 754 binary16 bits to float32 exactly. Without a
// loop over subnormals, so that it inlines into the kernels' loops: the
// exponent and mantissa shifted into place read as a float32 2^112 times
// too small, subnormals included, and multiplying by 2^112 is exact. Inf
// and NaN only need the exponent filled in.
func F16ToF32(h uint16) float32 {
	em := uint32(h&0x7fff) << 13
	sign := uint32(h&0x8000) << 16
	if em >= 0x1f<<23 {
		return math.Float32frombits(sign | 0x7f800000 | em)
	}
	return math.Float32frombits(sign | math.Float32bits(math.Float32frombits(em)*0x1p112))
}

// F32ToBF16 converts f to bfloat16 bits, rounding to nearest even. NaN stays
// a quiet NaN with its sign; it never rounds into Inf.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToF32 converts bfloat16 bits to float32 exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
