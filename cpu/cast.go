package cpu

import (
	"math"
	"math/bits"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// castKernel converts from one dtype to another with the rules documented
// on primitives.Cast.
func castKernel(from, to graph.DType) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.ElementwiseParams)
		a, out := c.Args[0].Bytes, c.Args[1].Bytes
		runs(c, p, elemGrain, func(o, n int, _, _ [3]int, tmp []float32) {
			tx, tz := tmp[:chunk], tmp[chunk:2*chunk]
			switch {
			case from.IsFloat() && to.IsFloat():
				x := f32In(from, a, o, 1, n, tx)
				z := f32Out(to, out, o, 1, n, tz)
				copy(z, x)
				f32Store(to, out, o, 1, z)
			case from.IsFloat():
				for k, v := range f32In(from, a, o, 1, n, tx) {
					if to == graph.Bool {
						out[o+k] = b2u(v != 0)
					} else {
						storeInt(to, out, o+k, floatToInt(v, to))
					}
				}
			case to.IsFloat():
				z := f32Out(to, out, o, 1, n, tz)
				for k := range z {
					z[k] = intToFloat(loadIntOrBool(from, a, o+k), to)
				}
				f32Store(to, out, o, 1, z)
			default:
				for k := range n {
					v := loadIntOrBool(from, a, o+k)
					if to == graph.Bool {
						out[o+k] = b2u(v != 0)
					} else {
						storeInt(to, out, o+k, saturate(v, to))
					}
				}
			}
		})
		return nil
	}
}

// loadIntOrBool loads element i of an integer or bool dtype.
func loadIntOrBool(dt graph.DType, b []byte, i int) int64 {
	if dt == graph.Bool {
		return int64(b2u(b[i] != 0))
	}
	return loadInt(dt, b, i)
}

// intRange is the range of integer dtype dt.
func intRange(dt graph.DType) (lo, hi int64) {
	switch dt {
	case graph.Int32:
		return math.MinInt32, math.MaxInt32
	case graph.Uint32:
		return 0, math.MaxUint32
	}
	return math.MinInt64, math.MaxInt64
}

// saturate clamps v to the range of integer dtype dt.
func saturate(v int64, dt graph.DType) int64 {
	lo, hi := intRange(dt)
	return min(max(v, lo), hi)
}

// floatToInt truncates v toward zero into integer dtype dt, saturating at
// its range; NaN gives 0.
func floatToInt(v float32, dt graph.DType) int64 {
	if v != v {
		return 0
	}
	t := math.Trunc(float64(v))
	lo, hi := intRange(dt)
	switch {
	case t <= float64(lo):
		return lo
	case t >= float64(hi): // float64(MaxInt64) is 2^63, itself out of range
		return hi
	}
	return int64(t)
}

// intToFloat returns v rounded to nearest even in float dtype dt, as a
// float32 that holds the rounded value exactly. Rounding an int64 to float32
// first and then to float16 or bfloat16 would round twice, which is wrong
// when the first rounding lands on a midpoint of the second.
func intToFloat(v int64, dt graph.DType) float32 {
	var prec int // significand bits of dt
	switch dt {
	case graph.Float32:
		return float32(v)
	case graph.Float16:
		prec = 11
	default:
		prec = 8
	}
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	if n := bits.Len64(u); n > prec {
		shift := n - prec
		q, rest, half := u>>shift, u&(1<<shift-1), uint64(1)<<(shift-1)
		if rest > half || rest == half && q&1 == 1 {
			q++
		}
		u = q << shift
	}
	f := float32(u) // exact: at most prec ≤ 24 significant bits
	if v < 0 {
		f = -f
	}
	return f
}

func init() {
	for _, from := range graph.DTypes {
		for _, to := range graph.DTypes {
			mustRegister(primitives.CastKernel(from, to), castKernel(from, to))
		}
	}
}
