package ops_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
)

// unravel returns the multi-index of element e of shape.
func unravel(e int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d], e = e%shape[d], e/shape[d]
	}
	return idx
}

// ravel returns the element of multi-index idx in shape.
func ravel(idx, shape []int) int {
	e := 0
	for d, i := range idx {
		e = e*shape[d] + i
	}
	return e
}

// seqInput returns the values 1, 2, … (distinct, so that a misplaced
// element shows) of a shape, and a builder of the array in dtype dt.
func seqInput(dt graph.DType, shape ...int) ([]float64, func() *graph.Array) {
	n := graph.NumElements(shape)
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i%200 + 1)
	}
	switch dt {
	case graph.Int64, graph.Int32, graph.Uint32:
		iv := make([]int64, n)
		for i, x := range v {
			iv[i] = int64(x)
		}
		return v, func() *graph.Array { return intConst(dt, iv, shape...) }
	case graph.Bool:
		b := make([]bool, n)
		for i := range b {
			b[i] = i%3 != 0
			v[i] = b01(b[i])
		}
		return v, func() *graph.Array { return graph.FromBytes(graph.Bool, boolBytes(b), shape...) }
	}
	f := make([]float32, n)
	for i, x := range v {
		f[i] = float32(x)
	}
	return v, func() *graph.Array { return floats(dt, f, shape...) }
}

var layoutDTypes = []graph.DType{graph.Float32, graph.BFloat16, graph.Int64, graph.Bool}

func TestArange(t *testing.T) {
	cases := []struct {
		start, stop, step float64
		dt                graph.DType
	}{
		{0, 10, 1, graph.Int32}, {3, -4, -2, graph.Int64}, {0, 1, 0.1, graph.Float32}, {-1, 1, 0.25, graph.BFloat16},
		{5, 5, 1, graph.Float32}, {5, 0, 1, graph.Uint32}, {0, 1000, 3, graph.Float16}, {2, 9, 3, graph.Uint32},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v:%v:%v/%s", c.start, c.stop, c.step, c.dt), func(t *testing.T) {
			var want []float64
			for x := c.start; c.step > 0 && x < c.stop-1e-9 || c.step < 0 && x > c.stop+1e-9; x += c.step {
				want = append(want, x)
			}
			if c.dt.IsFloat() {
				want = inDType(c.dt, want)
			}
			spec, got := evalFloat64s(t, func() *graph.Array { return ops.Arange(c.start, c.stop, c.step, c.dt) })
			checkShape(t, spec, c.dt, len(want))
			atol, _ := loomtest.Tolerance(c.dt)
			loomtest.Close(t, "arange", got, want, atol*float64(len(want)), 0) // want accumulates rounding
		})
	}
}

func TestBroadcastTo(t *testing.T) {
	cases := []struct{ from, to []int }{
		{[]int{3, 1}, []int{2, 3, 4}}, {[]int{}, []int{5}}, {[]int{1}, []int{0}}, {[]int{0, 3}, []int{2, 0, 3}},
		{[]int{4}, []int{4}}, {[]int{2, 1, 3}, []int{2, 5, 3}}, {[]int{1, 1}, []int{}},
	}
	for _, dt := range layoutDTypes {
		for _, c := range cases {
			if len(c.to) < len(c.from) {
				continue
			}
			t.Run(fmt.Sprintf("%s/%v-%v", dt, c.from, c.to), func(t *testing.T) {
				x, in := seqInput(dt, c.from...)
				want := make([]float64, graph.NumElements(c.to))
				for i := range want {
					want[i] = x[broadcastIndex(i, c.to, c.from)]
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.BroadcastTo(in(), c.to...) })
				checkShape(t, spec, dt, c.to...)
				loomtest.Close(t, "broadcast", got, want, 0, 0)
			})
		}
	}
}

func TestStackSplit(t *testing.T) {
	for _, dt := range layoutDTypes {
		for _, axis := range []int{0, 1, 2, -1, -3} {
			t.Run(fmt.Sprintf("%s/stack axis %d", dt, axis), func(t *testing.T) {
				shape := []int{2, 3}
				var xs [][]float64
				var ins []func() *graph.Array
				for k := range 3 {
					x, _ := seqInput(dt, shape...)
					for i := range x {
						x[i] += float64(10 * k)
						if dt == graph.Bool {
							x[i] = b01((i+k)%2 == 0)
						}
					}
					xs = append(xs, x)
					ins = append(ins, constLike(dt, x, shape))
				}
				ax := (axis + 3) % 3
				out := append(append(append([]int{}, shape[:ax]...), 3), shape[ax:]...)
				want := make([]float64, graph.NumElements(out))
				for e := range want {
					idx := unravel(e, out)
					k := idx[ax]
					src := append(append([]int{}, idx[:ax]...), idx[ax+1:]...)
					want[e] = xs[k][ravel(src, shape)]
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.Stack(axis, ins[0](), ins[1](), ins[2]()) })
				checkShape(t, spec, dt, out...)
				loomtest.Close(t, "stack", got, want, 0, 0)
			})
		}
		t.Run(dt.String()+"/split", func(t *testing.T) {
			shape := []int{4, 6}
			x, in := seqInput(dt, shape...)
			check := func(what string, pieces func(*graph.Array) []*graph.Array, bounds []int, axis int) {
				for p := 0; p+1 < len(bounds); p++ {
					spec, got := evalFloat64s(t, func() *graph.Array { return pieces(in())[p] })
					want := []float64{}
					ps := append([]int{}, shape...)
					ps[axis] = bounds[p+1] - bounds[p]
					for e := range graph.NumElements(ps) {
						idx := unravel(e, ps)
						idx[axis] += bounds[p]
						want = append(want, x[ravel(idx, shape)])
					}
					checkShape(t, spec, dt, ps...)
					loomtest.Close(t, fmt.Sprintf("%s piece %d", what, p), got, want, 0, 0)
				}
			}
			check("split 3 along -1", func(a *graph.Array) []*graph.Array { return ops.Split(a, 3, -1) }, []int{0, 2, 4, 6}, 1)
			check("split 1", func(a *graph.Array) []*graph.Array { return ops.Split(a, 1, 0) }, []int{0, 4}, 0)
			check("split at", func(a *graph.Array) []*graph.Array { return ops.SplitAt(a, []int{1, 1, 3}, 0) }, []int{0, 1, 1, 3, 4}, 0)
		})
	}
}

// constLike returns a builder of a constant of dtype dt and shape holding
// v (integers exactly, bools as v ≠ 0).
func constLike(dt graph.DType, v []float64, shape []int) func() *graph.Array {
	switch dt {
	case graph.Int64, graph.Int32, graph.Uint32:
		iv := make([]int64, len(v))
		for i, x := range v {
			iv[i] = int64(x)
		}
		return func() *graph.Array { return intConst(dt, iv, shape...) }
	case graph.Bool:
		b := make([]bool, len(v))
		for i, x := range v {
			b[i] = x != 0
		}
		return func() *graph.Array { return graph.FromBytes(graph.Bool, boolBytes(b), shape...) }
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return func() *graph.Array { return floats(dt, f, shape...) }
}

func TestPad(t *testing.T) {
	cases := []struct{ shape, low, high []int }{
		{[]int{2, 3}, []int{1, 0}, []int{2, 3}}, {[]int{5}, []int{0}, []int{0}}, {[]int{0, 2}, []int{1, 1}, []int{0, 1}},
		{[]int{}, []int{}, []int{}}, {[]int{3, 1, 2}, []int{0, 2, 1}, []int{1, 0, 0}},
	}
	for _, dt := range layoutDTypes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%v/%v/%v", dt, c.shape, c.low, c.high), func(t *testing.T) {
				x, in := seqInput(dt, c.shape...)
				out := make([]int, len(c.shape))
				for i, d := range c.shape {
					out[i] = d + c.low[i] + c.high[i]
				}
				value := 7.0
				if dt == graph.Bool {
					value = 1
				}
				want := make([]float64, graph.NumElements(out))
				for e := range want {
					idx := unravel(e, out)
					want[e] = value
					inside := true
					for d := range idx {
						idx[d] -= c.low[d]
						inside = inside && idx[d] >= 0 && idx[d] < c.shape[d]
					}
					if inside {
						want[e] = x[ravel(idx, c.shape)]
					}
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.Pad(in(), c.low, c.high, value) })
				checkShape(t, spec, dt, out...)
				loomtest.Close(t, "pad", got, want, 0, 0)
			})
		}
	}
}

func TestSliceStrided(t *testing.T) {
	const lo, hi = math.MinInt, math.MaxInt
	cases := []struct{ shape, starts, stops, steps []int }{
		{[]int{7}, []int{-1}, []int{lo}, []int{-1}},                           // reversed
		{[]int{7}, []int{1}, []int{-1}, []int{2}},                             // negative stop
		{[]int{9}, []int{-2}, []int{0}, []int{-3}},                            // backward, exclusive stop
		{[]int{5}, []int{4}, []int{2}, []int{1}},                              // empty
		{[]int{5}, []int{-100}, []int{hi}, []int{1}},                          // clamped
		{[]int{4, 6}, []int{hi, 0}, []int{lo, hi}, []int{-1, 5}},              // both axes
		{[]int{3, 4, 5}, []int{0, -1, 1}, []int{3, lo, 5}, []int{2, -2, 3}},   // rank 3
		{[]int{2, 0, 3}, []int{0, 0, 0}, []int{2, 0, 3}, []int{1, 1, -1}},     // an empty axis
		{[]int{1, 1}, []int{0, -1}, []int{1, lo}, []int{1, -1}},               // size 1
		{[]int{300}, []int{299}, []int{lo}, []int{-7}},                        // long reversed
		{[]int{2, 3, 2}, []int{1, 2, 0}, []int{lo, lo, hi}, []int{-1, -1, 1}}, // every axis walked
		{[]int{6, 5}, []int{-1, -2}, []int{-7, -5}, []int{-2, -1}},            // negative both
		{[]int{6, 5}, []int{0, 0}, []int{6, 5}, []int{1, 1}},                  // a plain copy
		{[]int{10}, []int{-3}, []int{hi}, []int{1}},                           // the last 3
		{[]int{8}, []int{6}, []int{-9}, []int{-2}},                            // clamped backward
		{[]int{3}, []int{0}, []int{3}, []int{5}},                              // step past the end
		{[]int{4, 3}, []int{1, -1}, []int{hi, lo}, []int{hi, lo}},             // steps of ±MaxInt
	}
	for _, dt := range layoutDTypes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%v/%v:%v:%v", dt, c.shape, c.starts, c.stops, c.steps), func(t *testing.T) {
				x, in := seqInput(dt, c.shape...)
				// Python's slice indices, listed one by one.
				picks := make([][]int, len(c.shape))
				out := make([]int, len(c.shape))
				for d, n := range c.shape {
					start, stop, step := c.starts[d], c.stops[d], c.steps[d]
					if start < 0 {
						start += n
					}
					if stop < 0 {
						stop += n
					}
					if step > 0 {
						start, stop = min(max(start, 0), n), min(max(stop, 0), n)
						for i := start; i < stop; i += step {
							picks[d] = append(picks[d], i)
							if step >= stop-i { // the next would pass stop (or overflow)
								break
							}
						}
					} else {
						start, stop = min(max(start, -1), n-1), min(max(stop, -1), n-1)
						for i := start; i > stop; i += step {
							picks[d] = append(picks[d], i)
							if step <= stop-i {
								break
							}
						}
					}
					out[d] = len(picks[d])
				}
				want := make([]float64, graph.NumElements(out))
				for e := range want {
					idx := unravel(e, out)
					for d := range idx {
						idx[d] = picks[d][idx[d]]
					}
					want[e] = x[ravel(idx, c.shape)]
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.SliceStrided(in(), c.starts, c.stops, c.steps) })
				checkShape(t, spec, dt, out...)
				loomtest.Close(t, "slice", got, want, 0, 0)
			})
		}
	}
}

func TestTrilTriuCausalMask(t *testing.T) {
	cases := []struct {
		shape []int
		k     int
	}{
		{[]int{3, 4}, 0}, {[]int{3, 4}, 1}, {[]int{4, 3}, -2}, {[]int{2, 3, 5}, 0}, {[]int{1, 1}, 0},
		{[]int{3, 3}, math.MaxInt}, {[]int{3, 3}, math.MinInt}, {[]int{0, 3}, 0}, {[]int{2, 1, 7, 9}, 3},
	}
	for _, dt := range layoutDTypes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%v/k=%d", dt, c.shape, c.k), func(t *testing.T) {
				x, in := seqInput(dt, c.shape...)
				lower, upper := make([]float64, len(x)), make([]float64, len(x))
				r := len(c.shape)
				for e := range x {
					idx := unravel(e, c.shape)
					i, j := idx[r-2], idx[r-1]
					if j <= i+c.k || c.k == math.MaxInt {
						lower[e] = x[e]
					}
					if j >= i+c.k && c.k != math.MaxInt || c.k == math.MinInt {
						upper[e] = x[e]
					}
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.Tril(in(), c.k) })
				checkShape(t, spec, dt, c.shape...)
				loomtest.Close(t, "tril", got, lower, 0, 0)
				_, got = evalFloat64s(t, func() *graph.Array { return ops.Triu(in(), c.k) })
				loomtest.Close(t, "triu", got, upper, 0, 0)
			})
		}
	}
	for _, c := range [][2]int{{3, 5}, {4, 4}, {1, 6}, {0, 3}, {5, 2}} {
		t.Run(fmt.Sprintf("causal %v", c), func(t *testing.T) {
			q, k := c[0], c[1]
			want := make([]float64, q*k)
			for i := range q {
				for j := range k {
					if j > i+k-q {
						want[i*k+j] = math.Inf(-1)
					}
				}
			}
			spec, got := evalFloat64s(t, func() *graph.Array { return ops.CausalMask(q, k, graph.Float16) })
			checkShape(t, spec, graph.Float16, q, k)
			loomtest.Close(t, "mask", got, want, 0, 0)
		})
	}
}
