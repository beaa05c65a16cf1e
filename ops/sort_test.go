package ops_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

var scanDTypes = []graph.DType{graph.Float32, graph.Float16, graph.BFloat16, graph.Int32, graph.Int64, graph.Uint32}

// numericInput returns seeded values of dtype dt (floats in [-4, 4) with a
// NaN and repeated values once there are more than 8, integers with
// extremes and repeats) as float64 and int64 (integers only), and a
// builder of the array.
func numericInput(seed uint64, dt graph.DType, shape ...int) ([]float64, []int64, func() *graph.Array) {
	n := graph.NumElements(shape)
	if dt.IsFloat() {
		f, x := randFloats(seed, dt, n, -4, 4)
		if n > 8 {
			f[3], x[3] = float32(math.NaN()), math.NaN()
			f[n-1], x[n-1] = f[0], x[0]
			f[n-2], x[n-2] = f[0], x[0]
			f[5], x[5] = float32(math.Copysign(0, -1)), 0
			f[6], x[6] = 0, 0
		}
		return x, nil, func() *graph.Array { return floats(dt, f, shape...) }
	}
	v := intInputs(seed, dt, n)
	if n > 8 {
		v[n-1], v[n-2] = v[2], v[2]
	}
	x := make([]float64, n)
	for i, e := range v {
		x[i] = float64(e)
	}
	return x, v, func() *graph.Array { return intConst(dt, v, shape...) }
}

// lines calls fn for every line along axis of shape with the flat indices
// of its elements in order.
func lines(shape []int, axis int, fn func(at []int)) {
	outer, n, inner := graph.NumElements(shape[:axis]), shape[axis], graph.NumElements(shape[axis+1:])
	for o := range outer {
		for i := range inner {
			at := make([]int, n)
			for k := range at {
				at[k] = (o*n+k)*inner + i
			}
			fn(at)
		}
	}
}

var scanCases = []struct {
	shape []int
	axis  int
}{
	{[]int{1}, 0}, {[]int{7}, 0}, {[]int{13}, -1}, {[]int{3, 5}, 0}, {[]int{3, 5}, -1},
	{[]int{2, 0, 3}, 1}, {[]int{2, 0, 3}, 0}, {[]int{4, 300}, 1}, {[]int{3, 33, 2}, 1},
}

func TestCumsum(t *testing.T) {
	for _, dt := range scanDTypes {
		for ci, c := range scanCases {
			t.Run(fmt.Sprintf("%s/%v/axis%d", dt, c.shape, c.axis), func(t *testing.T) {
				axis := (c.axis + len(c.shape)) % len(c.shape)
				x, v, in := numericInput(uint64(ci), dt, c.shape...)
				want := make([]float64, len(x))
				lines(c.shape, axis, func(at []int) {
					sum, isum := 0.0, int64(0)
					for _, e := range at {
						if dt.IsFloat() {
							sum += x[e]
							want[e] = sum
						} else {
							isum += v[e]
							want[e] = float64(binaryIntRef(primitives.Add, dt, isum, 0))
						}
					}
				})
				atol, rtol := loomtest.Tolerance(dt)
				if dt.IsFloat() {
					want = inDType(dt, want)
				} else {
					atol, rtol = 0, 0
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.Cumsum(in(), c.axis) })
				checkShape(t, spec, dt, c.shape...)
				loomtest.Close(t, "cumsum", got, want, atol, rtol)
			})
		}
	}
}

// sortRef returns the order that sorts the values at the flat indices at,
// stably, NaN the largest.
func sortRef(x []float64, v []int64, at []int, descending bool) []int {
	order := make([]int, len(at))
	for k := range order {
		order[k] = k
	}
	less := func(i, j int) bool {
		if v != nil {
			return v[at[i]] < v[at[j]]
		}
		a, b := x[at[i]], x[at[j]]
		return !math.IsNaN(a) && (math.IsNaN(b) || a < b)
	}
	slices.SortStableFunc(order, func(i, j int) int {
		if descending {
			i, j = j, i
		}
		switch {
		case less(i, j):
			return -1
		case less(j, i):
			return 1
		}
		return 0
	})
	return order
}

func TestSortArgsortTopK(t *testing.T) {
	for _, dt := range scanDTypes {
		for ci, c := range scanCases {
			for _, desc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/axis%d/desc=%v", dt, c.shape, c.axis, desc), func(t *testing.T) {
					axis := (c.axis + len(c.shape)) % len(c.shape)
					x, v, in := numericInput(uint64(ci), dt, c.shape...)
					vals, idx := make([]float64, len(x)), make([]float64, len(x))
					lines(c.shape, axis, func(at []int) {
						for r, k := range sortRef(x, v, at, desc) {
							vals[at[r]], idx[at[r]] = x[at[k]], float64(k)
						}
					})
					spec, got := evalFloat64s(t, func() *graph.Array { return ops.Sort(in(), c.axis, desc) })
					checkShape(t, spec, dt, c.shape...)
					loomtest.Close(t, "values", got, vals, 0, 0)
					spec, got = evalFloat64s(t, func() *graph.Array { return ops.Argsort(in(), c.axis, desc) })
					checkShape(t, spec, graph.Int32, c.shape...)
					loomtest.Close(t, "indices", got, idx, 0, 0)
					if !desc {
						return
					}
					n := c.shape[axis]
					for _, k := range []int{0, min(1, n), min(3, n), n} {
						top := append([]int{}, c.shape...)
						top[axis] = k
						var wantV, wantI []float64
						for e := range graph.NumElements(top) {
							i := unravel(e, top)
							wantV, wantI = append(wantV, vals[ravel(i, c.shape)]), append(wantI, idx[ravel(i, c.shape)])
						}
						spec, got := evalFloat64s(t, func() *graph.Array { v, _ := ops.TopK(in(), k, c.axis); return v })
						checkShape(t, spec, dt, top...)
						loomtest.Close(t, fmt.Sprintf("top %d values", k), got, wantV, 0, 0)
						_, got = evalFloat64s(t, func() *graph.Array { _, i := ops.TopK(in(), k, c.axis); return i })
						loomtest.Close(t, fmt.Sprintf("top %d indices", k), got, wantI, 0, 0)
					}
				})
			}
		}
	}
}

func TestTakeAlongAxis(t *testing.T) {
	cases := []struct {
		shape, idx []int
		axis       int
	}{
		{[]int{3, 5, 4}, []int{3, 2, 4}, 1}, {[]int{7}, []int{9}, 0}, {[]int{2, 3}, []int{2, 1}, -1},
		{[]int{4, 3}, []int{0, 3}, 0}, {[]int{1, 6, 1}, []int{1, 6, 1}, 1},
	}
	for _, dt := range layoutDTypes {
		for _, it := range []graph.DType{graph.Int32, graph.Int64} {
			for ci, c := range cases {
				t.Run(fmt.Sprintf("%s/%s/%v/%v/axis%d", dt, it, c.shape, c.idx, c.axis), func(t *testing.T) {
					axis := (c.axis + len(c.shape)) % len(c.shape)
					x, in := seqInput(dt, c.shape...)
					n := c.shape[axis]
					r := loomtest.Rand(uint64(ci))
					ix := make([]int64, graph.NumElements(c.idx))
					want := make([]float64, len(ix))
					for e := range ix {
						ix[e] = int64(r.IntN(2*n) - n) // negative ones count from the end
						pos := unravel(e, c.idx)
						pos[axis] = int(ix[e])
						if ix[e] < 0 {
							pos[axis] += n
						}
						want[e] = x[ravel(pos, c.shape)]
					}
					spec, got := evalFloat64s(t, func() *graph.Array { return ops.TakeAlongAxis(in(), intConst(it, ix, c.idx...), c.axis) })
					checkShape(t, spec, dt, c.idx...)
					loomtest.Close(t, "take", got, want, 0, 0)
				})
			}
		}
	}
	t.Run("argsort then take sorts", func(t *testing.T) {
		x, _, in := numericInput(9, graph.BFloat16, 6, 11)
		want := make([]float64, len(x))
		lines([]int{6, 11}, 1, func(at []int) {
			for r, k := range sortRef(x, nil, at, false) {
				want[at[r]] = x[at[k]]
			}
		})
		_, got := evalFloat64s(t, func() *graph.Array { a := in(); return ops.TakeAlongAxis(a, ops.Argsort(a, 1, false), 1) })
		loomtest.Close(t, "sorted", got, want, 0, 0)
	})
	t.Run("bad index", func(t *testing.T) {
		for _, tg := range loomtest.Targets(t) {
			_, in := seqInput(graph.Float32, 2, 3)
			// Computed on the device, so that only the kernel can see it.
			bad := ops.Add(graph.FromInt32s([]int32{0, 1, 2, 0}, 2, 2), graph.FromInt32s([]int32{0, 0, 0, 3}, 2, 2))
			err := tg.RT.Eval(ops.TakeAlongAxis(in(), bad, 1))
			// The CPU's words, CUDA's (the same but the range) or Metal's.
			if err == nil || !strings.Contains(err.Error(), "indices[3] = 3 is out of range") && !strings.Contains(err.Error(), "indices entry 3 is 3") {
				t.Fatalf("%s: got %v, want an error naming indices[3] = 3", tg.Name, err)
			}
			if tg.Exact && !strings.Contains(err.Error(), "[-3, 3)") {
				t.Fatalf("%s: got %v, want the range [-3, 3)", tg.Name, err)
			}
		}
	})
}

func TestScatterAddRows(t *testing.T) {
	for _, dt := range scanDTypes {
		for _, it := range []graph.DType{graph.Int32, graph.Int64} {
			t.Run(fmt.Sprintf("%s/%s", dt, it), func(t *testing.T) {
				const rows, width = 5, 37
				ix := []int64{2, -1, 0, 2, 4, 2, 0}
				d, dv, din := numericInput(1, dt, rows, width)
				s, sv, sin := numericInput(2, dt, len(ix), width)
				want := append([]float64{}, d...)
				dv = append([]int64{}, dv...) // din holds the original
				for i, r := range ix {
					if r < 0 {
						continue
					}
					for e := range width {
						at := int(r)*width + e
						if dt.IsFloat() {
							sum := float32(want[at]) + float32(s[i*width+e]) // float32 add, then the dtype
							want[at] = loomtest.Round(dt, []float32{sum})[0]
						} else {
							dv[at] = binaryIntRef(primitives.Add, dt, dv[at], sv[i*width+e])
							want[at] = float64(dv[at])
						}
					}
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.ScatterAddRows(din(), intConst(it, ix, len(ix)), sin()) })
				checkShape(t, spec, dt, rows, width)
				loomtest.Close(t, "scatter add", got, want, 0, 0)
			})
		}
	}
}
