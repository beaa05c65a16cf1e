package cuda

import (
	"os"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// TestLtTakes holds the rule of which matmul dispatches cuBLASLt runs to
// its cases, without a GPU: plain 2-D products of weights stored [N, K]
// of at least the rows, rows of whole 16-byte vectors, arguments long
// enough.
func TestLtTakes(t *testing.T) {
	args := func(dt graph.DType, m, n, k int) []runtime.BufferArg {
		es := int64(dt.Size())
		return []runtime.BufferArg{{Size: int64(m*k) * es}, {Size: int64(n*k) * es}, {Size: int64(m*n) * es}}
	}
	plain := func(m, n, k uint32) *primitives.MatMulParams {
		return &primitives.MatMulParams{M: m, N: n, K: k, Batch: 1, TransposeB: 1}
	}
	bf, f32 := graph.BFloat16, graph.Float32
	for _, c := range []struct {
		name string
		dt   graph.DType
		p    *primitives.MatMulParams
		rows int
		args []runtime.BufferArg
		want bool
	}{
		{"serving step", bf, plain(120, 4096, 1024), 65, args(bf, 120, 4096, 1024), true},
		{"at the rows", bf, plain(65, 1024, 2048), 65, args(bf, 65, 1024, 2048), true},
		{"below the rows", bf, plain(64, 1024, 2048), 65, args(bf, 64, 1024, 2048), false},
		{"rows 0: off", bf, plain(512, 1024, 2048), 0, args(bf, 512, 1024, 2048), false},
		{"rows 9", bf, plain(9, 1024, 2048), 9, args(bf, 9, 1024, 2048), true},
		{"float32 N of 4", f32, plain(100, 4, 8), 65, args(f32, 100, 4, 8), true},
		{"bfloat16 N of 4", bf, plain(100, 4, 8), 65, args(bf, 100, 4, 8), false},
		{"odd K", bf, plain(100, 1024, 1001), 65, args(bf, 100, 1024, 1001), false},
		{"odd N", bf, plain(100, 1001, 1024), 65, args(bf, 100, 1001, 1024), false},
		{"no columns", bf, plain(100, 0, 1024), 65, args(bf, 100, 0, 1024), false},
		{"K = 0", bf, plain(100, 1024, 0), 65, args(bf, 100, 1024, 0), false},
		{"batched", bf, &primitives.MatMulParams{M: 100, N: 64, K: 64, Batch: 2, TransposeB: 1}, 65, args(bf, 200, 64, 64), false},
		{"weights [K, N]", bf, &primitives.MatMulParams{M: 100, N: 64, K: 64, Batch: 1}, 65, args(bf, 100, 64, 64), false},
		{"a transposed", bf, &primitives.MatMulParams{M: 100, N: 64, K: 64, Batch: 1, TransposeA: 1, TransposeB: 1}, 65, args(bf, 100, 64, 64), false},
		{"short output", bf, plain(100, 64, 64), 65, args(bf, 99, 64, 64), false},
		{"two arguments", bf, plain(100, 64, 64), 65, args(bf, 100, 64, 64)[:2], false},
		{"no params", bf, nil, 65, args(bf, 100, 64, 64), false},
	} {
		if got := ltTakes(c.dt, c.p, c.rows, c.args); got != c.want {
			t.Errorf("%s: ltTakes = %v, want %v", c.name, got, c.want)
		}
	}
	if !ltAligned(0, 16, 4096) || ltAligned(0, 8) || ltAligned(2) {
		t.Error("ltAligned does not hold pointers to 16 bytes")
	}
}

// TestLtPlanOfWithoutLibrary checks that a device without cuBLASLt runs
// every product in its own kernels, says why, and refuses rows.
func TestLtPlanOfWithoutLibrary(t *testing.T) {
	d := &Device{ltErr: errLtOff}
	k := &kernel{name: primitives.MatMulTiledKernel(graph.BFloat16), lt: true, ltDType: graph.BFloat16}
	b := &buffer{dev: d, ptr: 1 << 20, n: 1 << 20}
	a := []runtime.BufferArg{{Buffer: b, Size: 100 * 64 * 2}, {Buffer: b, Size: 64 * 64 * 2}, {Buffer: b, Size: 100 * 64 * 2}}
	if p := d.ltPlanOf(k, &primitives.MatMulParams{M: 100, N: 64, K: 64, Batch: 1, TransposeB: 1}, a); p != nil {
		t.Errorf("ltPlanOf without cuBLASLt = %v, want nil", p)
	}
	if err := d.SetCuBLASLtRows(65); err == nil || !strings.Contains(err.Error(), "LOOM_CUBLASLT=0") {
		t.Errorf("SetCuBLASLtRows(65) = %v, want an error saying LOOM_CUBLASLT=0", err)
	}
	if err := d.SetCuBLASLtRows(0); err != nil {
		t.Errorf("SetCuBLASLtRows(0) = %v, want nil: turning it off needs no library", err)
	}
	if err := d.SetCuBLASLtRows(-1); err == nil {
		t.Error("SetCuBLASLtRows(-1) = nil, want an error")
	}
	if s := d.CuBLASLt().String(); !strings.HasPrefix(s, "cuBLASLt off: ") || !strings.Contains(s, "LOOM_CUBLASLT=0") {
		t.Errorf("CuBLASLt() = %q, want it off naming LOOM_CUBLASLT=0", s)
	}
}

// TestLoadCuBLASLtErrors checks the lookup's errors: a file that does not
// exist is named, with the variable that names another; a file that is
// not cuBLASLt (libcuda's loader finds libc) names the missing function.
func TestLoadCuBLASLtErrors(t *testing.T) {
	const missing = "/nonexistent/libcublasLt.so.13"
	_, err := loadCuBLASLt(missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "LOOM_CUBLASLT") {
		t.Errorf("loadCuBLASLt(%q) = %v, want an error naming the file and LOOM_CUBLASLT", missing, err)
	}
	_, err = loadCuBLASLt("libc.so.6")
	if err == nil || !strings.Contains(err.Error(), "libc.so.6 has no cublasLt") {
		t.Errorf("loadCuBLASLt(libc.so.6) = %v, want an error naming a missing cublasLt function", err)
	}
}

// TestLtStartupEnvironment checks LOOM_CUBLASLT and LOOM_CUBLASLT_ROWS as
// Open reads them, without a GPU: neither (or rows 0) leaves cuBLASLt off
// and unloaded, saying how to ask for it; 0 turns it off; a missing file
// leaves it off with the file named; 1 makes its absence an error; a bad
// row count is an error.
func TestLtStartupEnvironment(t *testing.T) {
	const missing = "/nonexistent/libcublasLt.so.13"
	for _, c := range []struct {
		lib, rows string
		err, why  string // Open's error, and CuBLASLt's reason, that must appear ("" none)
	}{
		{why: "not asked for"}, // the default: off, not loaded
		{rows: "0", why: "not asked for"},
		{lib: "0", rows: "65", why: "LOOM_CUBLASLT=0"},
		{lib: missing, why: missing},
		{lib: missing, rows: "9", why: missing},
		{lib: "0", rows: "x", err: `LOOM_CUBLASLT_ROWS="x"`},
		{lib: "0", rows: "-3", err: `LOOM_CUBLASLT_ROWS="-3"`},
	} {
		t.Setenv("LOOM_CUBLASLT", c.lib)
		t.Setenv("LOOM_CUBLASLT_ROWS", c.rows)
		if c.rows == "" {
			os.Unsetenv("LOOM_CUBLASLT_ROWS")
		}
		d := &Device{}
		err := d.ltStartup()
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("LOOM_CUBLASLT=%q LOOM_CUBLASLT_ROWS=%q: ltStartup = %v, want an error with %s", c.lib, c.rows, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("LOOM_CUBLASLT=%q: ltStartup = %v, want nil", c.lib, err)
		case c.why != "" && (d.lt != nil || d.ltErr == nil || !strings.Contains(d.ltErr.Error(), c.why)):
			t.Errorf("LOOM_CUBLASLT=%q: cuBLASLt %v, reason %v; want off, naming %s", c.lib, d.lt, d.ltErr, c.why)
		}
	}
	// LOOM_CUBLASLT=1 on a machine without the library: an error.
	if _, err := loadCuBLASLt(""); err == nil {
		t.Log("this machine has cuBLASLt: LOOM_CUBLASLT=1 not checked here")
		return
	}
	t.Setenv("LOOM_CUBLASLT", "1")
	os.Unsetenv("LOOM_CUBLASLT_ROWS")
	if err := (&Device{}).ltStartup(); err == nil || !strings.Contains(err.Error(), "LOOM_CUBLASLT=1") {
		t.Errorf("LOOM_CUBLASLT=1 without the library: ltStartup = %v, want an error", err)
	}
}

// TestLtKernels checks which kernels cuBLASLt may stand in for, as every
// kernel the device makes (at Open or at first use) is marked: the tiled
// and GEMV matmuls of each dtype, and no other.
func TestLtKernels(t *testing.T) {
	for _, spec := range primitives.Catalog() {
		k, err := newKernel(spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := false
		for _, dt := range primitives.MatMulDTypes {
			if spec.Name == primitives.MatMulTiledKernel(dt) || spec.Name == primitives.MatMulGEMVKernel(dt) {
				want = true
				if k.ltDType != dt {
					t.Errorf("%s: dtype %s, want %s", spec.Name, k.ltDType, dt)
				}
			}
		}
		if k.lt != want {
			t.Errorf("%s: cuBLASLt may run it: %v, want %v", spec.Name, k.lt, want)
		}
	}
}
