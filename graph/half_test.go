package graph_test

import (
	"math"
	"sort"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// The references here are written for clarity: decoding by the definition
// of the formats with math.Ldexp, and encoding by searching a sorted table of
// every representable value for the nearest one.

// f16Value is the value of binary16 bits h by definition.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), int(h&0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(float64(m), -24)
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(float64(1024+m), e-25)
}

// bf16Value is the value of bfloat16 bits h by definition.
func bf16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>7&0xff), int(h&0x7f)
	switch e {
	case 0:
		return sign * math.Ldexp(float64(m), -133)
	case 0xff:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(float64(128+m), e-134)
}

// format is one 16-bit float format under test.
type format struct {
	name   string
	value  func(uint16) float64
	decode func(uint16) float32
	encode func(float32) uint16
	inf    uint16  // bits of +Inf
	above  float64 // the value the next exponent would give +Inf's bits: where rounding to Inf starts being measured from
}

var formats = []format{
	{"float16", f16Value, graph.F16ToF32, graph.F32ToF16, 0x7c00, 65536},
	{"bfloat16", bf16Value, graph.BF16ToF32, graph.F32ToBF16, 0x7f80, math.Ldexp(1, 128)},
}

func isNaN16(f format, h uint16) bool { return h&0x7fff > f.inf }

// table returns the non-negative finite values of f in bit order (which is
// value order), followed by f.above standing for +Inf.
func (f format) table() []float64 {
	t := make([]float64, f.inf+1)
	for h := range f.inf {
		t[h] = f.value(h)
	}
	t[f.inf] = f.above
	return t
}

// nearest returns the bits of f nearest x, ties to the even bit pattern,
// by searching the table.
func (f format) nearest(table []float64, x float32) uint16 {
	if x != x {
		panic("nearest of NaN")
	}
	var sign uint16
	ax := float64(x)
	if math.Signbit(ax) {
		sign, ax = 0x8000, -ax
	}
	i := sort.SearchFloat64s(table, ax) // first entry ≥ ax
	switch {
	case i == len(table):
		return sign | f.inf
	case table[i] == ax || i == 0:
		return sign | uint16(i)
	}
	lo, hi := ax-table[i-1], table[i]-ax
	if lo < hi || lo == hi && (i-1)%2 == 0 {
		return sign | uint16(i-1)
	}
	return sign | uint16(i)
}

func TestDecodeExhaustive(t *testing.T) {
	for _, f := range formats {
		for b := range 1 << 16 {
			h := uint16(b)
			got, want := f.decode(h), f.value(h)
			gotSign := math.Float32bits(got)>>31 == 1
			if isNaN16(f, h) {
				if got == got || gotSign != (h>>15 == 1) {
					t.Fatalf("%s %#04x: got %v (sign %v), want NaN with sign %v", f.name, h, got, gotSign, h>>15 == 1)
				}
				continue
			}
			if float64(got) != want || gotSign != (h>>15 == 1) {
				t.Fatalf("%s %#04x: got %v, want %v", f.name, h, got, want)
			}
		}
	}
}

func TestEncodeRoundTripsExhaustive(t *testing.T) {
	for _, f := range formats {
		for b := range 1 << 16 {
			h := uint16(b)
			got := f.encode(f.decode(h))
			if isNaN16(f, h) {
				if !isNaN16(f, got) || got>>15 != h>>15 {
					t.Fatalf("%s NaN %#04x encodes to %#04x, want a NaN of the same sign", f.name, h, got)
				}
				continue
			}
			if got != h {
				t.Fatalf("%s %#04x (%v) encodes to %#04x", f.name, h, f.value(h), got)
			}
		}
	}
}

// TestEncodeMidpointsExhaustive checks every midpoint between adjacent
// non-negative values (and their negatives): the midpoint rounds to the even
// pattern, values just above and below it to the nearer neighbour. The
// midpoint above the largest finite value rounds to Inf.
func TestEncodeMidpointsExhaustive(t *testing.T) {
	for _, f := range formats {
		table := f.table()
		for h := range f.inf {
			mid := float32((table[h] + table[h+1]) / 2) // exact: one more bit than the format
			even := h
			if h%2 == 1 {
				even = h + 1
			}
			cases := []struct {
				x    float32
				want uint16
			}{
				{mid, even},
				{math.Nextafter32(mid, float32(math.Inf(1))), h + 1},
				{math.Nextafter32(mid, 0), h},
			}
			for _, c := range cases {
				if got := f.encode(c.x); got != c.want {
					t.Fatalf("%s: %v (between %#04x and %#04x) encodes to %#04x, want %#04x", f.name, c.x, h, h+1, got, c.want)
				}
				if got := f.encode(-c.x); got != c.want|0x8000 {
					t.Fatalf("%s: %v encodes to %#04x, want %#04x", f.name, -c.x, got, c.want|0x8000)
				}
			}
		}
	}
}

func TestEncodeOverflowAndNaN(t *testing.T) {
	for _, f := range formats {
		for _, x := range []float32{math.MaxFloat32, float32(math.Inf(1)), float32(f.above)} {
			if got := f.encode(x); got != f.inf {
				t.Errorf("%s: %v encodes to %#04x, want +Inf %#04x", f.name, x, got, f.inf)
			}
			if got := f.encode(-x); got != f.inf|0x8000 {
				t.Errorf("%s: %v encodes to %#04x, want -Inf", f.name, -x, got)
			}
		}
		// NaNs of every kind, including payloads only in the low bits that a
		// careless rounding carries into Inf.
		r := loomtest.Rand(3)
		nans := []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff, 0x7f80ffff, 0x7fbfffff}
		for range 10000 {
			nans = append(nans, 0x7f800001|r.Uint32()&0x807fffff)
		}
		for _, b := range nans {
			got := f.encode(math.Float32frombits(b))
			if !isNaN16(f, got) || uint32(got>>15) != b>>31 {
				t.Fatalf("%s: NaN %#08x encodes to %#04x, want a NaN with sign %d", f.name, b, got, b>>31)
			}
		}
	}
}

// TestEncodeRandom checks random float32s against the table search: any bit
// pattern, values across each format's range, and tiny values around the
// subnormals.
func TestEncodeRandom(t *testing.T) {
	r := loomtest.Rand(4)
	for _, f := range formats {
		table := f.table()
		maxFinite := table[f.inf-1]
		for i := range 600000 {
			var x float32
			switch i % 3 {
			case 0:
				x = math.Float32frombits(r.Uint32())
			case 1:
				x = float32((r.Float64()*2 - 1) * maxFinite * 1.01)
			default:
				x = float32(math.Ldexp(r.Float64()*2-1, -r.IntN(150)))
			}
			if x != x {
				continue // TestEncodeOverflowAndNaN
			}
			if got, want := f.encode(x), f.nearest(table, x); got != want {
				t.Fatalf("%s: %v (%#08x) encodes to %#04x, want %#04x", f.name, x, math.Float32bits(x), got, want)
			}
		}
	}
}
