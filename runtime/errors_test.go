package runtime_test

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// tCustom is a one-input, one-output float32 primitive with a configurable
// lowering: the kernel it names, its grid and group, or an error.
type tCustom struct {
	kernel      string
	grid, group primitives.Dim3
	err         error
}

func (tCustom) Name() string { return "test_custom" }
func (tCustom) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	return []graph.Spec{in[0]}, nil
}
func (t tCustom) Lower(l *primitives.Lowering) error {
	if t.err != nil {
		return t.err
	}
	l.Dispatch(t.kernel, t.grid, t.group, &primitives.CopyParams{Bytes: uint32(l.Inputs[0].Bytes())}, primitives.In(0), primitives.Out(0))
	return nil
}

var one3 = primitives.Dim3{X: 1, Y: 1, Z: 1}

// siteOf returns the call site a graph.Error in err's chain names.
func siteOf(err error) string {
	var ge *graph.Error
	if !errors.As(err, &ge) {
		return ""
	}
	return ge.Site
}

// TestErrorsKeepIdentity: the errors of the runtime and of the graph are
// matchable with errors.Is and errors.As through every layer that adds
// context, and name the call site of the op.
func TestErrorsKeepIdentity(t *testing.T) {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{MemoryLimit: 4096})
	defer rt.Close()
	x := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(2), 8, -1, 1), 2, 4)

	big := graph.Full(graph.Float32, 1, 64, 64) // 16 KiB: over the limit
	sum, at := ops.Add(big, big), line()
	err := rt.Eval(sum)
	if !errors.Is(err, runtime.ErrMemoryLimit) || !strings.Contains(err.Error(), "4096") {
		t.Errorf("memory limit: %v does not match runtime.ErrMemoryLimit", err)
	}
	if s := siteOf(err); s != fmt.Sprintf("runtime/errors_test.go:%d", at) && !strings.HasPrefix(s, "runtime/errors_test.go") {
		t.Errorf("memory limit: site %q", s)
	}

	unknown, at := ops.Apply(tCustom{kernel: "no_such_kernel", grid: one3, group: one3}, x)[0], line()
	err = rt.Eval(unknown)
	if !errors.Is(err, runtime.ErrUnsupportedKernel) || !strings.Contains(err.Error(), "no_such_kernel") {
		t.Errorf("unknown kernel: %v does not match runtime.ErrUnsupportedKernel", err)
	}
	if s := siteOf(err); s != fmt.Sprintf("runtime/errors_test.go:%d", at) {
		t.Errorf("unknown kernel: site %q, want line %d", s, at)
	}

	cause := errors.New("the lowering's own error")
	err = rt.Eval(ops.Apply(tCustom{err: cause}, x)[0])
	if !errors.Is(err, cause) {
		t.Errorf("lowering error: %v does not wrap its cause", err)
	}

	// A dispatch that disagrees with its kernel's catalog entry fails before
	// any launch: test_matmul takes a, b and out, and tCustom binds two.
	mismatch, at := ops.Apply(tCustom{kernel: "test_matmul", grid: one3, group: one3}, x)[0], line()
	err = rt.Eval(mismatch)
	if err == nil || !strings.Contains(err.Error(), "kernel test_matmul takes 3 buffer arguments (a, b, out), the dispatch binds 2") {
		t.Errorf("a dispatch that disagrees with the catalog: %v", err)
	}
	if s := siteOf(err); s != fmt.Sprintf("runtime/errors_test.go:%d", at) {
		t.Errorf("catalog mismatch: site %q, want line %d", s, at)
	}

	// Donation misuse, at build time and at Eval time.
	cache := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(1), 64, -1, 1), 8, 8)
	reader := ops.Apply(tReadSum{}, cache)[0]
	c2 := ops.Apply(tScatter{}, cache, graph.FromInt32s([]int32{1}), graph.Full(graph.Float32, 3, 1, 8))[0]
	if err := ops.Add(cache, cache).Err(); !errors.Is(err, graph.ErrDonated) {
		t.Errorf("use after donation: %v does not match graph.ErrDonated", err)
	}
	if err := rt.Eval(c2); err != nil {
		t.Fatal(err)
	}
	if err := rt.Eval(reader); !errors.Is(err, graph.ErrDonated) {
		t.Errorf("eval of a reader of an overwritten array: %v does not match graph.ErrDonated", err)
	}
	if _, err := cache.Float32s(); !errors.Is(err, graph.ErrDonated) {
		t.Errorf("read of an overwritten array: %v does not match graph.ErrDonated", err)
	}
}

// TestClose: Close is idempotent, waits for work in flight (whose results
// stay readable), and Eval and EvalAsync after it return runtime.ErrClosed,
// on the plain CPU device and the checking devices.
func TestClose(t *testing.T) {
	for _, co := range []cpu.Options{{}, {Check: true}, {Check: true, Seed: 5}, {Check: true, Lazy: true, Seed: 6}} {
		t.Run(fmt.Sprintf("%+v", co), func(t *testing.T) {
			dev := cpu.New(co)
			rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 2})
			x := graph.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)
			y := ops.Add(x, x)
			if err := rt.Eval(y); err != nil {
				t.Fatal(err)
			}
			z := y
			for range 9 {
				z = ops.Add(z, x)
			}
			p, err := rt.EvalAsync(z)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				rt.Close()
				rt.Close()
				dev.Close()
				dev.Close()
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Close hangs")
			}
			if err := p.Wait(); err != nil {
				t.Fatalf("work in flight at Close: %v", err)
			}
			if v, err := z.Float32s(); err != nil || fmt.Sprint(v) != "[11 22 33 44]" {
				t.Fatalf("result of the Eval in flight at Close: %v, %v", v, err)
			}
			if v, err := y.Float32s(); err != nil || fmt.Sprint(v) != "[2 4 6 8]" {
				t.Fatalf("result evaluated before Close: %v, %v", v, err)
			}
			if err := rt.Eval(ops.Add(y, y)); !errors.Is(err, runtime.ErrClosed) {
				t.Errorf("Eval after Close: %v", err)
			}
			if _, err := rt.EvalAsync(ops.Add(y, y)); !errors.Is(err, runtime.ErrClosed) {
				t.Errorf("EvalAsync after Close: %v", err)
			}
		})
	}
}

// TestCloseDuringEvals closes the runtime while other goroutines evaluate:
// each Eval either completes with the right value or returns ErrClosed.
func TestCloseDuringEvals(t *testing.T) {
	dev := cpu.New(cpu.Options{})
	rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 1})
	x := graph.FromFloat32s([]float32{1, 2}, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				h := x
				for range 20 {
					h = ops.Add(h, x)
				}
				if err := rt.Eval(h); err != nil {
					if !errors.Is(err, runtime.ErrClosed) {
						errs <- fmt.Errorf("goroutine %d: %w", g, err)
					}
					return
				}
				if v, _ := h.Float32s(); v[1] != 42 {
					errs <- fmt.Errorf("goroutine %d: h = %v", g, v)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	rt.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	dev.Close()
}

// line returns the line of its caller.
func line() int {
	_, _, l, _ := goruntime.Caller(1)
	return l
}

// TestZeroGrid: a dispatch with an empty grid that would write bytes, or an
// empty threadgroup, is rejected when the graph is lowered, naming the op;
// built-in ops on empty arrays, whose dispatches write nothing, still run.
func TestZeroGrid(t *testing.T) {
	rt, _ := runtime.New(cpu.New(cpu.Options{Check: true}), runtime.Options{})
	defer rt.Close()
	x := graph.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)
	for _, c := range []struct {
		grid, group primitives.Dim3
		want        string
	}{
		{primitives.Dim3{}, primitives.Dim3{}, "empty grid"},
		{primitives.Dim3{X: 4, Y: 0, Z: 1}, one3, "empty grid"},
		{one3, primitives.Dim3{}, "empty threadgroup"},
		{primitives.Dim3{X: -1, Y: -1, Z: 1}, one3, "negative"},
	} {
		a, at := ops.Apply(tCustom{kernel: "copy_bytes", grid: c.grid, group: c.group}, x)[0], line()
		err := rt.Eval(a)
		if err == nil || !strings.Contains(err.Error(), c.want) || siteOf(err) != fmt.Sprintf("runtime/errors_test.go:%d", at) {
			t.Errorf("grid %v group %v: error %v, want %q at line %d", c.grid, c.group, err, c.want, at)
		}
	}
	ok := ops.Apply(tCustom{kernel: "copy_bytes", grid: one3, group: one3}, x)[0]
	empty := graph.FromFloat32s(nil, 0, 3)
	sum := ops.Add(empty, empty)
	if err := rt.Eval(ok, sum, ops.Reshape(ops.Mul(sum, sum), 3, 0)); err != nil {
		t.Fatal(err)
	}
	if v, _ := ok.Float32s(); fmt.Sprint(v) != "[1 2 3 4]" {
		t.Fatalf("copy = %v", v)
	}
}
