//go:build linux && amd64

package mslcheck_test

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/loomrt/loom/metal/mslcheck"
)

// softmaxParams is testdata/softmax.metal's SoftmaxParams.
type softmaxParams struct {
	Cols  uint32
	Scale float32
}

// TestEmulatedSoftmax runs a user's kernel, written in MLX's style, in the
// emulation and compares it with a float64 reference, over awkward row
// lengths and several threadgroup sizes (more threads than columns too).
func TestEmulatedSoftmax(t *testing.T) {
	needCompiler(t)
	src, err := os.ReadFile("testdata/softmax.metal")
	if err != nil {
		t.Fatal(err)
	}
	lib, err := mslcheck.Emulate("testdata/softmax.metal", string(src), "scaled_softmax_float")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rows := range []int{1, 3} {
		for _, cols := range []int{1, 7, 33, 100, 257} {
			for _, threads := range []uint32{32, 64, 96, 256} {
				p := softmaxParams{uint32(cols), 0.7}
				in := make([]float32, rows*cols)
				for i := range in {
					in[i] = float32(rng.NormFloat64() * 3)
				}
				out := make([]float32, rows*cols)
				if err := lib.Run("scaled_softmax_float", [3]uint32{uint32(rows), 1, 1}, [3]uint32{threads, 1, 1}, in, out, &p); err != nil {
					t.Fatal(err)
				}
				for r := range rows {
					x := in[r*cols : (r+1)*cols]
					m := math.Inf(-1)
					for _, v := range x {
						m = math.Max(m, float64(v)*float64(p.Scale))
					}
					s := 0.0
					for _, v := range x {
						s += math.Exp(float64(v)*float64(p.Scale) - m)
					}
					for c, v := range x {
						want := math.Exp(float64(v)*float64(p.Scale)-m) / s
						if got := float64(out[r*cols+c]); math.Abs(got-want) > 1e-6+1e-5*want {
							t.Fatalf("rows %d cols %d threads %d: out[%d][%d] = %g, want %g", rows, cols, threads, r, c, got, want)
						}
					}
				}
			}
		}
	}
}

// TestEmulationErrors shows that bad dispatches are errors, not crashes.
func TestEmulationErrors(t *testing.T) {
	needCompiler(t)
	src, err := os.ReadFile("testdata/add_arrays.metal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mslcheck.Emulate("add_arrays.metal", string(src), "no_such_kernel"); err == nil || !strings.Contains(err.Error(), "no MSL kernel no_such_kernel") {
		t.Fatalf("an unknown kernel: got %v", err)
	}
	lib, err := mslcheck.Emulate("add_arrays.metal", string(src), "add_arrays")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := []float32{1, 2, 3}, []float32{10, 20, 30}, make([]float32, 3)
	if err := lib.Run("add_arrays", [3]uint32{1, 1, 1}, [3]uint32{3, 1, 1}, a, b, c); err != nil {
		t.Fatal(err)
	}
	if c[0] != 11 || c[1] != 22 || c[2] != 33 {
		t.Fatalf("add_arrays: %v", c)
	}
	for _, bad := range []struct {
		want string
		run  func() error
	}{
		{"nothing bound at [[buffer(2)]]", func() error { return lib.Run("add_arrays", [3]uint32{1, 1, 1}, [3]uint32{3, 1, 1}, a, b) }},
		{"want a non-empty slice", func() error { return lib.Run("add_arrays", [3]uint32{1, 1, 1}, [3]uint32{3, 1, 1}, a, b, []float32{}) }},
		{"want a non-empty slice", func() error { return lib.Run("add_arrays", [3]uint32{1, 1, 1}, [3]uint32{3, 1, 1}, a, b, 3) }},
		{"empty grid", func() error { return lib.Run("add_arrays", [3]uint32{0, 1, 1}, [3]uint32{3, 1, 1}, a, b, c) }},
		{"at most 1024", func() error { return lib.Run("add_arrays", [3]uint32{1, 1, 1}, [3]uint32{2048, 1, 1}, a, b, c) }},
		{"not in the emulated library", func() error { return lib.Run("blend_colors", [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, a) }},
		{"at most 31", func() error {
			return lib.Dispatch("add_arrays", make([]unsafe.Pointer, 32), [3]uint32{1, 1, 1}, [3]uint32{1, 1, 1})
		}},
	} {
		if err := bad.run(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("got %v, want an error mentioning %q", err, bad.want)
		}
	}
}

// blend is testdata/add_arrays.metal's Blend: float4 is 16-byte aligned.
type blend struct {
	Tint   [4]float32
	Amount float32
	Count  uint32
	_      [2]uint32
}

// TestEmulatedSwizzles runs blend_colors, an Apple-style kernel that reads,
// computes with and assigns swizzles over a 2D grid, against a Go
// reference.
func TestEmulatedSwizzles(t *testing.T) {
	needCompiler(t)
	src, err := os.ReadFile("testdata/add_arrays.metal")
	if err != nil {
		t.Fatal(err)
	}
	lib, err := mslcheck.Emulate("add_arrays.metal", string(src), "blend_colors")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// 5×3 groups of 4×2 threads make a 20×6 grid; count leaves the last
	// threads without a pixel.
	const width, height, count = 20, 6, 113
	in := make([]float32, 4*width*height)
	for i := range in {
		in[i] = rng.Float32()*2 - 0.5
	}
	out := make([]float32, len(in))
	b := blend{Tint: [4]float32{0.25, -0.5, 0.75, 2}, Amount: 0.3, Count: count}
	if err := lib.Run("blend_colors", [3]uint32{5, 3, 1}, [3]uint32{4, 2, 1}, in, out, &b); err != nil {
		t.Fatal(err)
	}
	for i := range width * height {
		c, got := in[4*i:4*i+4], out[4*i:4*i+4]
		want := make([]float64, 4)
		if i < count {
			a := float64(b.Amount)
			for k := range 3 {
				want[k] = float64(c[k])*(1-a) + float64(b.Tint[k])*a
			}
			want[0], want[1] = want[1]+1, want[0]+1
			want[2] = 2*want[2] + float64(c[2])*float64(b.Tint[0]) + float64(c[3])*float64(b.Tint[1])
			want[3] = 2 * float64(c[3])
		}
		for k := range 4 {
			if math.Abs(float64(got[k])-want[k]) > 1e-5 {
				t.Fatalf("pixel %d component %d: %g, want %g (all %v, want %v)", i, k, got[k], want[k], got, want)
			}
		}
	}
}

// TestEmulatedSIMDFunctions checks the emulation's prefix sums, shifts,
// broadcast and votes against their definitions, over two full SIMD groups
// per threadgroup.
func TestEmulatedSIMDFunctions(t *testing.T) {
	needCompiler(t)
	src, err := os.ReadFile("testdata/simd.metal")
	if err != nil {
		t.Fatal(err)
	}
	lib, err := mslcheck.Emulate("simd.metal", string(src), "simd_functions")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const groups, threads = 2, 64
	in := make([]int32, groups*threads)
	for i := range in {
		in[i] = int32(rng.IntN(100)) - 5
		if i/32%2 == 1 {
			in[i] = int32(rng.IntN(80)) + 1 // all positive, none above 90
		}
	}
	in[5], in[7] = 95, -3 // some above 90, not all positive
	out := make([]int32, 8*len(in))
	if err := lib.Run("simd_functions", [3]uint32{groups, 1, 1}, [3]uint32{threads, 1, 1}, in, out); err != nil {
		t.Fatal(err)
	}
	for s := 0; s < len(in); s += 32 {
		g := in[s : s+32]
		all, any := int32(1), int32(0)
		for _, v := range g {
			if v <= 0 {
				all = 0
			}
			if v > 90 {
				any = 1
			}
		}
		sum := int32(0)
		for l, v := range g {
			sum += v
			down, up := g[l], g[l]
			if l+3 < 32 {
				down = g[l+3]
			}
			if l >= 5 {
				up = g[l-5]
			}
			want := []int32{sum, sum - v, down, up, g[0], all, any, g[l^1]}
			got := out[8*(s+l) : 8*(s+l)+8]
			if !slices.Equal(got, want) {
				t.Fatalf("thread %d: %v, want %v (prefix sums, down 3, up 5, first, all, any, xor 1)", s+l, got, want)
			}
		}
	}
}

// matrixParams is testdata/simdgroup_matrix.metal's MatrixParams.
type matrixParams struct{ AX, AY, AT, BX, BY, DX, DY, DT uint32 }

// TestEmulatedSIMDGroupMatrix checks the emulation's SIMD-group matrix
// loads and stores (an origin of column x and row y in a 16-wide layout,
// and transposed) and its multiply-accumulate against their definitions,
// on small integers so that every sum is exact.
func TestEmulatedSIMDGroupMatrix(t *testing.T) {
	needCompiler(t)
	src, err := os.ReadFile("testdata/simdgroup_matrix.metal")
	if err != nil {
		t.Fatal(err)
	}
	lib, err := mslcheck.Emulate("simdgroup_matrix.metal", string(src), "simdgroup_matrix_ops")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	in := make([]float32, 16*16)
	for i := range in {
		in[i] = float32(rng.IntN(9) - 4)
	}
	for _, p := range []matrixParams{
		{},
		{AX: 3, AY: 5, BX: 8, BY: 1, DX: 2, DY: 7},
		{AX: 1, AY: 6, AT: 1, BX: 7, BY: 8, DX: 8, DY: 0, DT: 1},
	} {
		out := make([]float32, 16*16)
		if err := lib.Run("simdgroup_matrix_ops", [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, in, out, &p); err != nil {
			t.Fatal(err)
		}
		// at is element (r, c) of the 8×8 block at origin (x, y) of a
		// 16-wide layout, or of its transpose.
		at := func(r, c int, x, y uint32, tr bool) int {
			if tr {
				r, c = c, r
			}
			return (int(y)+r)*16 + int(x) + c
		}
		want := make([]float32, 16*16)
		for r := range 8 {
			for c := range 8 {
				s := float32(0.5)
				for k := range 8 {
					s += in[at(r, k, p.AX, p.AY, p.AT != 0)] * in[at(k, c, p.BX, p.BY, false)]
				}
				want[at(r, c, p.DX, p.DY, p.DT != 0)] = s
			}
		}
		if !slices.Equal(out, want) {
			t.Fatalf("%+v:\n got %v\nwant %v", p, out, want)
		}
	}
}
