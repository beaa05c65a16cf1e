package cuda

import (
	"strings"
	"testing"
	"time"
)

// nvrtcOrSkip loads NVRTC, or skips the test where there is none (NVRTC
// needs no GPU: set LOOM_NVRTC to a libnvrtc.so to run these tests on any
// machine).
func nvrtcOrSkip(t *testing.T) *nvrtc {
	t.Helper()
	n, err := loadNVRTC()
	if err != nil {
		t.Skipf("no NVRTC on this machine, the CUDA sources are not compiled: %v", err)
	}
	return n
}

// TestKernelsCompile compiles every kernel file with NVRTC, as Open does,
// and every variant, as the first dispatch of one of its kernels does, for
// the Hopper architecture.
func TestKernelsCompile(t *testing.T) {
	n := nvrtcOrSkip(t)
	files, err := sourceFiles()
	if err != nil {
		t.Fatal(err)
	}
	compile := func(t *testing.T, name, src string, opts []string) {
		t.Parallel()
		start := time.Now()
		cubin, err := n.compile(name, src, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%.1f s, a cubin of %.1f MB", time.Since(start).Seconds(), float64(len(cubin))/1e6)
	}
	for name, src := range files {
		t.Run(name, func(t *testing.T) { compile(t, name, src, compileOptions("90")) })
	}
	for _, v := range variants() {
		t.Run(v.function, func(t *testing.T) { compile(t, v.file, files[v.file], v.options("90")) })
	}
}

// TestCompileErrorsShowTheLog shows that a kernel that does not compile
// fails with NVRTC's message, pointing at the file and line.
func TestCompileErrorsShowTheLog(t *testing.T) {
	n := nvrtcOrSkip(t)
	src := "#line 1 \"broken.cu\"\nextern \"C\" __global__ void broken(float* out) {\n  out[0] = undeclared_value;\n}\n"
	_, err := n.compile("broken.cu", src, compileOptions("90"))
	if err == nil {
		t.Fatal("a kernel with an undeclared name compiled")
	}
	for _, want := range []string{"broken.cu(2)", "undeclared_value"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %q:\n%v", want, err)
		}
	}
}
