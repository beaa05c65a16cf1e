package primitives

import (
	"fmt"
	"math"

	"github.com/loomrt/loom/graph"
)

// RandomDist is a distribution Random draws from.
type RandomDist uint8

// The distributions. Element i of an output draws from the words w of
// Philox4x32-10 for counter (i, 0, 0, 0) and the key (Philox4x32):
//   - RandomBits: w[0], uint32;
//   - RandomUniform: Shift + Scale·u with u = (w[0] >> 8)·2^−24 in [0, 1);
//   - RandomNormal: Shift + Scale·z with z = √(−2 ln u1)·cos(2π u2) (Box and
//     Muller), u1 = ((w[0] >> 8) + 1)·2^−24 in (0, 1] and u2 = (w[1] >>
//     8)·2^−24; z in float64 on the CPU and CUDA, float32 on Metal.
//
// The value is computed in float32 and rounded to the dtype.
const (
	RandomBits RandomDist = iota
	RandomUniform
	RandomNormal
)

var randomNames = [...]string{"bits", "uniform", "normal"}

func (d RandomDist) String() string { return randomNames[d] }

// DTypes are the dtypes d draws: uint32 for RandomBits, the float dtypes
// for the others.
func (d RandomDist) DTypes() []graph.DType {
	if d == RandomBits {
		return []graph.DType{graph.Uint32}
	}
	return FloatDTypes
}

// RandomParams describe N draws of Random.
type RandomParams struct {
	N            uint32
	Scale, Shift float32
}

// Random fills an array of DType and Shape with draws of Dist, from its
// input, the key: uint32 [2]. The same key gives the same array on every
// device; keys drawn from a key (RandomBits of shape [n, 2]) give
// independent streams.
type Random struct {
	Dist         RandomDist
	DType        graph.DType
	Shape        Dims
	Scale, Shift float32
}

func (Random) Name() string { return "random" }

func (r Random) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("needs 1 input (the key), got %d", len(in))
	}
	if in[0].DType != graph.Uint32 || len(in[0].Shape) != 1 || in[0].Shape[0] != 2 {
		return nil, fmt.Errorf("the key must be uint32[2], got %s", in[0])
	}
	if int(r.Dist) >= len(randomNames) {
		return nil, fmt.Errorf("distribution %d is unsupported", r.Dist)
	}
	if !hasDType(r.Dist.DTypes(), r.DType) {
		return nil, fmt.Errorf("%s draws of dtype %s are unsupported (supported: %v)", r.Dist, r.DType, r.Dist.DTypes())
	}
	shape := r.Shape.Slice()
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("shape %v has negative dimension %d", shape, d)
		}
	}
	if math.IsNaN(float64(r.Scale)) || math.IsInf(float64(r.Scale), 0) || math.IsNaN(float64(r.Shift)) || math.IsInf(float64(r.Shift), 0) {
		return nil, fmt.Errorf("scale %g and shift %g must be finite", r.Scale, r.Shift)
	}
	if err := checkElements(graph.NumElements(shape)); err != nil {
		return nil, err
	}
	return []graph.Spec{{DType: r.DType, Shape: shape}}, nil
}

func (r Random) Lower(l *Lowering) error {
	n := l.Outputs[0].Size()
	if n == 0 {
		return nil
	}
	l.Dispatch(RandomKernel(r.Dist, r.DType), Dim3{Groups(n, ElementwiseThreads), 1, 1}, Dim3{ElementwiseThreads, 1, 1},
		&RandomParams{N: uint32(n), Scale: r.Scale, Shift: r.Shift}, In(0), Out(0))
	return nil
}

// RandomKernel is the kernel that draws d in dtype dt, such as
// "random_normal_bf16".
func RandomKernel(d RandomDist, dt graph.DType) string {
	return KernelName("random_"+d.String(), dt)
}

// RandomFloat is element i's value of a RandomUniform or RandomNormal draw
// before the rounding to the dtype, for a key; the CPU kernels'
// definition. The product and the sum are rounded one by one (never
// fused).
func RandomFloat(d RandomDist, i uint32, key [2]uint32, scale, shift float32) float32 {
	w := Philox4x32([4]uint32{i}, key)
	var v float32
	if d == RandomNormal {
		u1 := (float64(w[0]>>8) + 1) * 0x1p-24
		u2 := float64(w[1]>>8) * 0x1p-24
		v = float32(math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2))
	} else {
		v = float32(w[0]>>8) * 0x1p-24
	}
	return shift + float32(scale*v)
}

func init() {
	for _, d := range []RandomDist{RandomBits, RandomUniform, RandomNormal} {
		for _, dt := range d.DTypes() {
			register(KernelSpec{Name: RandomKernel(d, dt), Args: []ArgSpec{R("key"), W("out")}, Params: (*RandomParams)(nil)})
		}
	}
}
