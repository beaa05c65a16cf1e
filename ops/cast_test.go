package ops_test

import (
	"fmt"
	"math"
	"math/big"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// castSource returns the values a cast test converts from dtype dt, as a
// constant and as exact big.Floats (nil for NaN).
func castSource(dt graph.DType) (*graph.Array, []*big.Float) {
	r := loomtest.Rand(uint64(dt))
	switch {
	case dt.IsFloat():
		v := []float32{0, float32(math.Copysign(0, -1)), 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e-3, -7.9,
			65504, 65519, 65520, 70000, -70000, 1e10, -1e10, 2.2e9, -2.2e9, 3e9, 4.3e9, -3e9,
			9.3e18, -9.3e18, 1e30, -1e30, math.MaxFloat32, 5.96e-8, 2.98e-8, 1e-40, -1e-45,
			float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
		for range 500 { // every exponent, NaNs with payloads included
			v = append(v, math.Float32frombits(r.Uint32()))
		}
		for range 500 {
			v = append(v, (r.Float32()-0.5)*600)
		}
		held := loomtest.Round(dt, v)
		exact := make([]*big.Float, len(held))
		for i, x := range held {
			if !math.IsNaN(x) {
				exact[i] = big.NewFloat(x)
			}
		}
		return floats(dt, v, len(v)), exact
	case dt == graph.Bool:
		v := make([]bool, 257)
		exact := make([]*big.Float, len(v))
		for i := range v {
			v[i] = r.IntN(2) == 0
			exact[i] = big.NewFloat(0)
			if v[i] {
				exact[i] = big.NewFloat(1)
			}
		}
		return graph.FromBools(v), exact
	}
	v := []int64{0, 1, -1, 2047, 2049, 65504, 65519, 65520, 65535, 65536, 1<<24 + 1, 1<<24 + 1<<16 + 1, -(1<<24 + 1<<16 + 1),
		1<<24 + 1<<16, math.MaxInt32, math.MinInt32, math.MaxUint32, 1<<53 + 1, math.MaxInt64, math.MinInt64}
	for range 500 {
		v = append(v, int64(r.Uint64())>>r.IntN(64))
	}
	exact := make([]*big.Float, len(v))
	for i, x := range v {
		switch dt { // the value the dtype holds
		case graph.Int32:
			x = int64(int32(x))
		case graph.Uint32:
			x = int64(uint32(x))
		}
		exact[i] = new(big.Float).SetInt64(x)
	}
	return intConst(dt, v, len(v)), exact
}

// castRef is the documented conversion of x (nil for NaN) to dtype to.
func castRef(x *big.Float, to graph.DType) float64 {
	switch {
	case to == graph.Bool:
		if x == nil || x.Sign() != 0 {
			return 1
		}
		return 0
	case to.IsFloat() && x == nil:
		return math.NaN()
	case to.IsFloat():
		return roundToFloat(x, to)
	case x == nil:
		return 0
	}
	lo, hi := big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	switch to {
	case graph.Int32:
		lo, hi = big.NewInt(math.MinInt32), big.NewInt(math.MaxInt32)
	case graph.Uint32:
		lo, hi = big.NewInt(0), big.NewInt(math.MaxUint32)
	}
	if x.IsInf() {
		if x.Sign() > 0 {
			return bigIntFloat(hi)
		}
		return bigIntFloat(lo)
	}
	t, _ := x.Int(nil) // truncates toward zero
	switch {
	case t.Cmp(lo) < 0:
		t = lo
	case t.Cmp(hi) > 0:
		t = hi
	}
	return bigIntFloat(t)
}

// bigIntFloat returns t as float64, as graph.DecodeFloat64s would show the
// integer.
func bigIntFloat(t *big.Int) float64 {
	f, _ := new(big.Float).SetInt(t).Float64()
	return f
}

// roundToFloat rounds exact x to the nearest value of float dtype dt, ties
// to even, with subnormals and overflow to ±Inf.
func roundToFloat(x *big.Float, dt graph.DType) float64 {
	prec, minExp, maxFinite := uint(24), -126, float64(math.MaxFloat32)
	switch dt {
	case graph.Float16:
		prec, minExp, maxFinite = 11, -14, 65504
	case graph.BFloat16:
		prec, minExp, maxFinite = 8, -126, float64(math.Float32frombits(0x7f7f0000))
	}
	if x.IsInf() {
		return math.Inf(x.Sign())
	}
	smallest := new(big.Float).SetMantExp(big.NewFloat(1), minExp)
	var f float64
	if new(big.Float).Abs(x).Cmp(smallest) < 0 {
		// Subnormal range: round to a multiple of the quantum 2^(minExp−prec+1).
		q := minExp - int(prec) + 1
		scaled, _ := new(big.Float).SetMantExp(x, -q).Float64() // exact: x came from a float
		f = math.Ldexp(math.RoundToEven(scaled), q)
		if f == 0 && x.Signbit() {
			f = math.Copysign(0, -1)
		}
	} else {
		f, _ = new(big.Float).SetPrec(prec).SetMode(big.ToNearestEven).Set(x).Float64()
	}
	if math.Abs(f) > maxFinite {
		return math.Inf(x.Sign())
	}
	return f
}

func TestCast(t *testing.T) {
	for _, from := range graph.DTypes {
		for _, to := range graph.DTypes {
			t.Run(fmt.Sprintf("%s_to_%s", from, to), func(t *testing.T) {
				_, exact := castSource(from)
				want := make([]float64, len(exact))
				for i, x := range exact {
					want[i] = castRef(x, to)
				}
				spec, got := evalFloat64s(t, func() *graph.Array {
					src, _ := castSource(from)
					return ops.Cast(src, to)
				})
				checkShape(t, spec, to, len(want))
				for i := range want {
					g, w := got[i], want[i]
					if !(g == w && math.Signbit(g) == math.Signbit(w) || math.IsNaN(g) && math.IsNaN(w)) {
						t.Fatalf("element %d (%v): got %v, want %v", i, exact[i], g, w)
					}
				}
			})
		}
	}
}

// TestCastNaNKeepsSign checks that float conversions keep a NaN's sign.
func TestCastNaNKeepsSign(t *testing.T) {
	neg := math.Float32frombits(0xffc00001)
	for _, from := range floatDTypes {
		for _, to := range floatDTypes {
			_, got := evalFloat64s(t, func() *graph.Array { return ops.Cast(floats(from, []float32{neg}, 1), to) })
			if !math.IsNaN(got[0]) || !math.Signbit(got[0]) {
				t.Errorf("%s to %s: got %v (sign bit %v), want a negative NaN", from, to, got[0], math.Signbit(got[0]))
			}
		}
	}
}

func TestCastSameDTypeIsIdentity(t *testing.T) {
	a := graph.FromFloat32s([]float32{1, 2})
	if got := ops.Cast(a, graph.Float32); got != a {
		t.Fatalf("Cast to the array's own dtype built a new node %v", got)
	}
}
