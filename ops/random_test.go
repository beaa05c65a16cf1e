package ops_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// randomRef is element i of a draw as primitives.RandomDist defines it, in
// float64 from the Philox words (TestPhilox checks the generator against
// known answers).
func randomRef(d primitives.RandomDist, i int, seed uint64, scale, shift float64) float64 {
	w := primitives.Philox4x32([4]uint32{uint32(i)}, [2]uint32{uint32(seed), uint32(seed >> 32)})
	switch d {
	case primitives.RandomUniform:
		return shift + scale*float64(w[0]>>8)/(1<<24)
	case primitives.RandomNormal:
		u1, u2 := (float64(w[0]>>8)+1)/(1<<24), float64(w[1]>>8)/(1<<24)
		return shift + scale*math.Sqrt(-2*math.Log(u1))*math.Cos(2*math.Pi*u2)
	}
	return float64(w[0])
}

func TestRandom(t *testing.T) {
	const seed = 0x1234_5678_9abc_def0
	for _, shape := range [][]int{{}, {1}, {7}, {3, 257}, {0, 4}} {
		n := graph.NumElements(shape)
		t.Run(fmt.Sprintf("bits/%v", shape), func(t *testing.T) {
			want := make([]float64, n)
			for i := range want {
				want[i] = randomRef(primitives.RandomBits, i, seed, 1, 0)
			}
			spec, got := evalFloat64s(t, func() *graph.Array { return ops.RandomBits(ops.RandomKey(seed), shape...) })
			checkShape(t, spec, graph.Uint32, shape...)
			loomtest.Close(t, "bits", got, want, 0, 0)
		})
		for _, dt := range floatDTypes {
			t.Run(fmt.Sprintf("uniform/%s/%v", dt, shape), func(t *testing.T) {
				want := make([]float64, n)
				for i := range want {
					want[i] = randomRef(primitives.RandomUniform, i, seed, 5, -2)
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.RandomUniform(ops.RandomKey(seed), -2, 3, dt, shape...) })
				checkShape(t, spec, dt, shape...)
				atol, rtol := loomtest.Tolerance(dt)
				loomtest.Close(t, "uniform", got, inDType(dt, want), atol, rtol)
			})
			t.Run(fmt.Sprintf("normal/%s/%v", dt, shape), func(t *testing.T) {
				want := make([]float64, n)
				for i := range want {
					want[i] = randomRef(primitives.RandomNormal, i, seed, 0.5, 1)
				}
				spec, got := evalFloat64s(t, func() *graph.Array { return ops.RandomNormal(ops.RandomKey(seed), 1, 0.5, dt, shape...) })
				checkShape(t, spec, dt, shape...)
				atol, rtol := loomtest.Tolerance(dt)
				loomtest.Close(t, "normal", got, inDType(dt, want), atol, rtol)
			})
		}
	}
}

// TestRandomStatistics checks the moments of large draws: a reference that
// shared a mistake with the kernels would still have to pass these.
func TestRandomStatistics(t *testing.T) {
	const n = 200_000
	tg := loomtest.Targets(t)[0]
	moments := func(a *graph.Array) (mean, std, within1 float64) {
		tg.Eval(t, a)
		v, err := a.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			mean += x
		}
		mean /= n
		for _, x := range v {
			std += (x - mean) * (x - mean)
			if math.Abs(x) <= 1 {
				within1++
			}
		}
		return mean, math.Sqrt(std / n), within1 / n
	}
	keys := ops.RandomSplit(ops.RandomKey(42), 2)
	mean, std, _ := moments(ops.RandomUniform(keys[0], 0, 1, graph.Float32, n))
	if math.Abs(mean-0.5) > 0.005 || math.Abs(std-math.Sqrt(1.0/12)) > 0.005 {
		t.Errorf("uniform: mean %.4f, std %.4f; want 0.5 and %.4f", mean, std, math.Sqrt(1.0/12))
	}
	mean, std, within := moments(ops.RandomNormal(keys[1], 0, 1, graph.Float32, n))
	if math.Abs(mean) > 0.01 || math.Abs(std-1) > 0.01 || math.Abs(within-0.6827) > 0.005 {
		t.Errorf("normal: mean %.4f, std %.4f, %.4f within 1; want 0, 1 and 0.6827", mean, std, within)
	}
}

func TestRandomKeys(t *testing.T) {
	const seed = 7
	parent := [2]uint32{seed, 0}
	keys := ops.RandomSplit(ops.RandomKey(seed), 3)
	tg := loomtest.Targets(t)[1]
	draws := make([]*graph.Array, len(keys))
	for i, k := range keys {
		draws[i] = ops.RandomBits(k, 4)
	}
	tg.Eval(t, append(append([]*graph.Array{}, keys...), draws...)...)
	seen := map[uint32]bool{}
	for i, k := range keys {
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		w0, w1 := primitives.Philox4x32([4]uint32{uint32(2 * i)}, parent)[0], primitives.Philox4x32([4]uint32{uint32(2*i + 1)}, parent)[0]
		got := [2]uint32{uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24}
		if got != [2]uint32{w0, w1} {
			t.Fatalf("key %d is %x, want %x (the bits of the parent's draw)", i, got, [2]uint32{w0, w1})
		}
		v, _ := draws[i].Float64s()
		for _, x := range v {
			if seen[uint32(x)] {
				t.Fatalf("key %d draws %d again: the split keys' streams overlap", i, uint32(x))
			}
			seen[uint32(x)] = true
		}
	}
}
