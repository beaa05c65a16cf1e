package ops_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

var binaryOps = map[primitives.BinaryOp]func(a, b *graph.Array) *graph.Array{
	primitives.Add: ops.Add, primitives.Sub: ops.Sub, primitives.Mul: ops.Mul, primitives.Div: ops.Div,
	primitives.Maximum: ops.Maximum, primitives.Minimum: ops.Minimum, primitives.Power: ops.Power,
	primitives.Equal: ops.Equal, primitives.NotEqual: ops.NotEqual, primitives.Less: ops.Less,
	primitives.LessEqual: ops.LessEqual, primitives.Greater: ops.Greater, primitives.GreaterEqual: ops.GreaterEqual,
}

// binaryFloatRef is op on float64s; comparisons give 0 or 1.
func binaryFloatRef(op primitives.BinaryOp, a, b float64) float64 {
	bool01 := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	switch op {
	case primitives.Add:
		return a + b
	case primitives.Sub:
		return a - b
	case primitives.Mul:
		return a * b
	case primitives.Div:
		return a / b
	case primitives.Maximum:
		if math.IsNaN(a) || math.IsNaN(b) {
			return math.NaN()
		}
		return math.Max(a, b)
	case primitives.Minimum:
		if math.IsNaN(a) || math.IsNaN(b) {
			return math.NaN()
		}
		return math.Min(a, b)
	case primitives.Power:
		return math.Pow(a, b)
	case primitives.Equal:
		return bool01(a == b)
	case primitives.NotEqual:
		return bool01(a != b)
	case primitives.Less:
		return bool01(a < b)
	case primitives.LessEqual:
		return bool01(a <= b)
	case primitives.Greater:
		return bool01(a > b)
	}
	return bool01(a >= b)
}

// binaryIntRef is op on integers of dtype dt, wrapping to dt's width;
// division truncates and a division by zero gives 0.
func binaryIntRef(op primitives.BinaryOp, dt graph.DType, a, b int64) int64 {
	var v int64
	switch op {
	case primitives.Add:
		v = a + b
	case primitives.Sub:
		v = a - b
	case primitives.Mul:
		v = a * b
	case primitives.Div:
		if b != 0 {
			v = a / b
		}
	case primitives.Maximum:
		v = max(a, b)
	case primitives.Minimum:
		v = min(a, b)
	case primitives.Power:
		v = powIntRef(a, b)
	default:
		return int64(binaryFloatRef(op, float64(a), float64(b)))
	}
	switch dt {
	case graph.Int32:
		return int64(int32(v))
	case graph.Uint32:
		return int64(uint32(v))
	}
	return v
}

var broadcastCases = []struct{ a, b []int }{
	{[]int{}, []int{7}},
	{[]int{1}, []int{1}},
	{[]int{2, 3, 5}, []int{5}},
	{[]int{4, 1, 3}, []int{1, 5, 3}},
	{[]int{33, 70}, []int{33, 70}},
	{[]int{6, 1}, []int{6, 300}},
	{[]int{0, 3}, []int{3}},
	{[]int{20001}, []int{20001}},  // several workers
	{[]int{3, 7001}, []int{7001}}, // several workers, broadcast rows
}

// intInputs returns n seeded integers of dtype dt, with zeros and extremes
// among them.
// powIntRef is a^b modulo 2^64 by math/big, for b ≥ 0; for b < 0 it is
// 0 but for the bases 1 and −1 (1/a^|b| truncated toward zero).
func powIntRef(a, b int64) int64 {
	if b < 0 {
		switch {
		case a == 1, a == -1 && b%2 == 0:
			return 1
		case a == -1:
			return -1
		}
		return 0
	}
	mod := new(big.Int).Lsh(big.NewInt(1), 64)
	r := new(big.Int).Exp(big.NewInt(a), big.NewInt(b), mod) // in [0, 2^64)
	return int64(r.Uint64())
}

func intInputs(seed uint64, dt graph.DType, n int) []int64 {
	r := loomtest.Rand(seed)
	v := make([]int64, n)
	for i := range v {
		switch dt {
		case graph.Uint32:
			v[i] = int64(r.Uint32() % 1000)
		default:
			v[i] = int64(r.IntN(2001)) - 1000
		}
		if i%11 == 3 {
			v[i] = 0
		}
	}
	if n > 2 {
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		switch dt {
		case graph.Int32:
			lo, hi = math.MinInt32, math.MaxInt32
		case graph.Uint32:
			lo, hi = 0, math.MaxUint32
		}
		v[0], v[1] = lo, hi
	}
	return v
}

// intConst returns a constant of integer dtype dt holding v (wrapped to its
// width) with the given shape; no shape means a scalar.
func intConst(dt graph.DType, v []int64, shape ...int) *graph.Array {
	b := make([]byte, len(v)*dt.Size())
	for i, x := range v {
		switch dt {
		case graph.Int64:
			binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
		default:
			binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
		}
	}
	return graph.FromBytes(dt, b, shape...)
}

func TestBinary(t *testing.T) {
	for _, op := range primitives.BinaryOps {
		for _, dt := range primitives.BinaryDTypes {
			for ci, c := range broadcastCases {
				t.Run(fmt.Sprintf("%s/%s/%v+%v", op, dt, c.a, c.b), func(t *testing.T) {
					if ci >= len(broadcastCases)-2 && dt != graph.BFloat16 && dt != graph.Int32 {
						t.Skip("the multi-worker shapes run for one float and one integer dtype")
					}
					out, _ := primitives.BroadcastShapes(c.a, c.b)
					na, nb := graph.NumElements(c.a), graph.NumElements(c.b)
					want := make([]float64, graph.NumElements(out))
					var build func() *graph.Array
					if dt.IsFloat() {
						fa, ra := randFloats(uint64(10+ci), dt, na, -4, 4)
						fb, rb := randFloats(uint64(20+ci), dt, nb, -4, 4)
						if nb > 2 && len(want) > 2 { // equal operands and a NaN for the comparisons and Maximum/Minimum
							fb[1], rb[1] = fa[broadcastIndex(1, out, c.a)], ra[broadcastIndex(1, out, c.a)]
							fb[2], rb[2] = float32(math.NaN()), math.NaN()
						}
						for i := range want {
							want[i] = binaryFloatRef(op, ra[broadcastIndex(i, out, c.a)], rb[broadcastIndex(i, out, c.b)])
						}
						if !op.IsComparison() {
							want = inDType(dt, want)
						}
						build = func() *graph.Array {
							return binaryOps[op](floats(dt, fa, c.a...), floats(dt, fb, c.b...))
						}
					} else {
						ia, ib := intInputs(uint64(10+ci), dt, na), intInputs(uint64(20+ci), dt, nb)
						for i := range want {
							want[i] = float64(binaryIntRef(op, dt, ia[broadcastIndex(i, out, c.a)], ib[broadcastIndex(i, out, c.b)]))
						}
						build = func() *graph.Array { return binaryOps[op](intConst(dt, ia, c.a...), intConst(dt, ib, c.b...)) }
					}
					spec, got := evalFloat64s(t, build)
					wantDT := dt
					if op.IsComparison() {
						wantDT = graph.Bool
					}
					checkShape(t, spec, wantDT, out...)
					atol, rtol := loomtest.Tolerance(dt)
					if !dt.IsFloat() || op.IsComparison() {
						atol, rtol = 0, 0
					}
					loomtest.Close(t, "result", got, want, atol, rtol)
				})
			}
		}
	}
}

func TestWhere(t *testing.T) {
	cases := []struct{ c, a, b []int }{
		{[]int{3, 1, 5}, []int{1, 4, 5}, []int{4, 1}},
		{[]int{}, []int{9}, []int{}},
		{[]int{1000}, []int{1000}, []int{1000}},
		{[]int{2, 0}, []int{1}, []int{2, 1}},
	}
	for _, dt := range graph.DTypes {
		for ci, c := range cases {
			t.Run(fmt.Sprintf("%s/%v,%v,%v", dt, c.c, c.a, c.b), func(t *testing.T) {
				out, _ := primitives.BroadcastShapes(c.c, c.a, c.b)
				r := loomtest.Rand(uint64(ci))
				cond := make([]bool, graph.NumElements(c.c))
				for i := range cond {
					cond[i] = r.IntN(2) == 0
				}
				// Values of every dtype from distinct small integers, so
				// that a wrong pick shows.
				av := make([]float32, graph.NumElements(c.a))
				bv := make([]float32, graph.NumElements(c.b))
				for i := range av {
					av[i] = float32(1 + i%100)
				}
				for i := range bv {
					bv[i] = float32(-1 - i%100)
				}
				mk := func(v []float32, shape []int) *graph.Array {
					switch {
					case dt.IsFloat():
						return floats(dt, v, shape...)
					case dt == graph.Bool:
						w := make([]bool, len(v))
						for i, x := range v {
							w[i] = x > 0
						}
						return graph.FromBytes(graph.Bool, boolBytes(w), shape...)
					}
					w := make([]int64, len(v))
					for i, x := range v {
						w[i] = int64(x) // uint32 wraps the negatives
					}
					return intConst(dt, w, shape...)
				}
				build := func() *graph.Array {
					return ops.Where(graph.FromBytes(graph.Bool, boolBytes(cond), c.c...), mk(av, c.a), mk(bv, c.b))
				}
				spec, gotB := evalOnTargets(t, build)
				checkShape(t, spec, dt, out...)
				// The reference: the same constructors give the expected
				// elements' bytes.
				ab, _ := mk(av, c.a).Bytes()
				bb, _ := mk(bv, c.b).Bytes()
				es := dt.Size()
				for i := range graph.NumElements(out) {
					src, j := bb, broadcastIndex(i, out, c.b)
					if cond[broadcastIndex(i, out, c.c)] {
						src, j = ab, broadcastIndex(i, out, c.a)
					}
					if string(gotB[i*es:(i+1)*es]) != string(src[j*es:(j+1)*es]) {
						t.Fatalf("element %d: got bytes %x, want %x", i, gotB[i*es:(i+1)*es], src[j*es:(j+1)*es])
					}
				}
			})
		}
	}
}
