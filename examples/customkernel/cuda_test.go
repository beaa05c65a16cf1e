//go:build linux

package customkernel_test

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/examples/customkernel"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// broken is a kernel whose CUDA source does not compile (a misspelt params
// field on line 3), registered as a user would, and brokenScale a
// primitive that dispatches it.
var broken = primitives.KernelSpec{
	Name:   "example_broken_scale_f32",
	Args:   []primitives.ArgSpec{primitives.R("x"), primitives.W("out")},
	Params: (*customkernel.ResidualRMSNormParams)(nil),
	CUDA: primitives.Source{File: "broken.cu", Text: `extern "C" __global__ void example_broken_scale_f32(const float* x, float* out, const ResidualRMSNormParams p, Status* status) {
  u32 i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < p.Rows * p.D) out[i] = x[i] * p.eps;
}
`},
}

type brokenScale struct{}

func (brokenScale) Name() string                                  { return "broken_scale" }
func (brokenScale) Outputs(in []graph.Spec) ([]graph.Spec, error) { return in[:1], nil }
func (brokenScale) Lower(l *primitives.Lowering) error {
	n := l.Inputs[0].Size()
	l.Dispatch(broken.Name, primitives.Dim3{X: primitives.Groups(n, 256), Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
		&customkernel.ResidualRMSNormParams{Rows: 1, D: uint32(n)}, primitives.In(0), primitives.Out(0))
	return nil
}

func init() {
	if err := primitives.Register(broken); err != nil {
		panic(err)
	}
}

// TestCUDASourceCompiles compiles the CUDA kernel with NVRTC for sm_90 as
// the CUDA device does on first use, on any machine with NVRTC (no GPU
// needed; LOOM_NVRTC may name the library), and shows that a compile error
// names the file and line.
func TestCUDASourceCompiles(t *testing.T) {
	err := cuda.CheckUserKernel(customkernel.Spec, "90")
	if cuda.IsUnavailable(err) {
		t.Skipf("no NVRTC on this machine, the CUDA source is not compiled (set LOOM_NVRTC to a libnvrtc.so): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	err = cuda.CheckUserKernel(broken, "90")
	if err == nil || !strings.Contains(err.Error(), "example_broken_scale_f32") || !strings.Contains(err.Error(), "broken.cu(3)") {
		t.Fatalf("a source that does not compile: %v, want NVRTC's message at broken.cu(3) naming the kernel", err)
	}
}

// TestCUDA runs the op on the CUDA device (where this machine has one)
// against the float64 reference, its kernel compiled from source on first
// use; a kernel whose source does not compile fails the Eval, every time,
// with an error naming the kernel and NVRTC's file(line).
func TestCUDA(t *testing.T) {
	dev, err := loomtest.CUDA(t)
	if err != nil {
		t.Skipf("no CUDA device on this machine, the CUDA kernel is not run: %v", err)
	}
	rt, err := runtime.New(dev, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	const eps = 1e-6
	atol, rtol := loomtest.Tolerance(graph.Float32)
	for _, shape := range shapes {
		x, res, w := inputs(loomtest.Rand(11), shape)
		d := shape[len(shape)-1]
		sum, out := customkernel.Apply(graph.FromFloat32s(x, shape...), graph.FromFloat32s(res, shape...), graph.FromFloat32s(w, d), eps)
		if err := rt.Eval(sum, out); err != nil {
			t.Fatalf("%v: %v", shape, err)
		}
		gotSum, _ := sum.Float32s()
		gotOut, _ := out.Float32s()
		wantSum, wantOut := reference(x, res, w, d, eps)
		loomtest.Close(t, "cuda sum", float64s(gotSum), wantSum, atol, rtol)
		loomtest.Close(t, "cuda out", float64s(gotOut), wantOut, atol, rtol)
	}
	for range 2 {
		y := ops.Apply(brokenScale{}, graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(3), 10, -1, 1), 10))[0]
		err := rt.Eval(y)
		if err == nil || !strings.Contains(err.Error(), "example_broken_scale_f32") || !strings.Contains(err.Error(), "broken.cu(3)") {
			t.Fatalf("a kernel that does not compile: %v, want NVRTC's message at broken.cu(3) naming the kernel", err)
		}
	}
}
