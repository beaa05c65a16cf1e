package ops

import (
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Random numbers come from explicit keys, uint32 [2] arrays: the same key
// gives the same numbers on every device, and nothing changes a key behind
// the caller's back. Element i of a draw is made from Philox4x32-10 with
// counter i and the key (primitives.RandomDist), so a draw does not depend
// on how the device splits the work. Draw new keys from a key with
// RandomSplit rather than reusing one.

// RandomKey returns the key of a seed: uint32 [2] holding its low and high
// words.
func RandomKey(seed uint64) *graph.Array {
	return graph.FromUint32s([]uint32{uint32(seed), uint32(seed >> 32)}, 2)
}

// RandomSplit returns n new keys drawn from key (the uint32 bits of a
// [n, 2] draw, a row each).
func RandomSplit(key *graph.Array, n int) []*graph.Array {
	pc := graph.Caller(0)
	if n < 1 {
		return failedOutputs(graph.Errorf(pc, "random", "RandomSplit needs n ≥ 1, got %d", n), 1)
	}
	bits := random(pc, key, primitives.RandomBits, graph.Uint32, 1, 0, []int{n, 2})
	keys := make([]*graph.Array, n)
	for i := range keys {
		s, _ := primitives.NewDims([]int{i, 0})
		e, _ := primitives.NewDims([]int{i + 1, 2})
		keys[i] = reshape(pc, "random", apply1(pc, primitives.Slice{Starts: s, Ends: e}, bits), []int{2})
	}
	return keys
}

// RandomBits returns uint32 random bits of the given shape from key.
func RandomBits(key *graph.Array, shape ...int) *graph.Array {
	return random(graph.Caller(0), key, primitives.RandomBits, graph.Uint32, 1, 0, shape)
}

// RandomUniform returns numbers uniform in [lo, hi) of float dtype dt and
// the given shape from key: lo + (hi−lo)·u in float32 for u in [0, 1) of 24
// bits, rounded to dt (which may round up to hi itself).
func RandomUniform(key *graph.Array, lo, hi float32, dt graph.DType, shape ...int) *graph.Array {
	pc := graph.Caller(0)
	if !(lo < hi) {
		return fail(pc, "random", "RandomUniform needs lo < hi, got %g and %g", lo, hi)
	}
	return random(pc, key, primitives.RandomUniform, dt, hi-lo, lo, shape)
}

// RandomNormal returns normally distributed numbers of mean and standard
// deviation std, of float dtype dt and the given shape, from key (Box and
// Muller's transform of two uniforms; mean + std·z in float32, rounded to
// dt).
func RandomNormal(key *graph.Array, mean, std float32, dt graph.DType, shape ...int) *graph.Array {
	return random(graph.Caller(0), key, primitives.RandomNormal, dt, std, mean, shape)
}

func random(pc uintptr, key *graph.Array, d primitives.RandomDist, dt graph.DType, scale, shift float32, shape []int) *graph.Array {
	s, err := dims(pc, "random", "shape", shape, key)
	if err != nil {
		return graph.Failed(err, graph.Spec{})
	}
	return apply1(pc, primitives.Random{Dist: d, DType: dt, Shape: s, Scale: scale, Shift: shift}, key)
}
