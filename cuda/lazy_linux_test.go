package cuda

import (
	"maps"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// brokenVariantKernels are kernels that TestLazyVariants makes the
// kernels of a variant that does not compile.
var brokenVariantKernels = []string{"test_broken_variant_a", "test_broken_variant_b"}

func init() {
	for _, name := range brokenVariantKernels {
		if err := primitives.Register(primitives.KernelSpec{Name: name, Args: []primitives.ArgSpec{primitives.W("out")}}); err != nil {
			panic(err)
		}
	}
}

// TestLazyVariants: a variant's kernels are compiled when the first of
// them is looked up, all into one module, the block sizes' kernels one
// function; a variant that does not compile
// fails every lookup of its kernels with an error naming the kernel, the
// variant and NVRTC's message, and is compiled once.
func TestLazyVariants(t *testing.T) {
	d := device(t)
	modules := func() int {
		d.lazyMu.Lock()
		defer d.lazyMu.Unlock()
		return len(d.lazyModules)
	}
	v, ok := variantOf(primitives.PagedAttentionKernel(graph.BFloat16, 128, 16, false))
	if !ok {
		t.Fatal("the bfloat16 attention of head size 128 is not a variant")
	}
	before := modules()
	fns := map[string]uintptr{} // by function
	for name, function := range v.kernels {
		k, err := d.Kernel(name)
		if err != nil {
			t.Fatal(err)
		}
		fn := k.(*kernel).fn
		if fn == 0 {
			t.Fatalf("kernel %s has no function", name)
		}
		if f, ok := fns[function]; ok && f != fn {
			t.Errorf("kernel %s is not the function %s that serves the other block sizes", name, function)
		}
		fns[function] = fn
	}
	if n := modules() - before; n > 1 {
		t.Errorf("the %d kernels of %s took %d modules, want one", len(v.kernels), v, n)
	}

	// A head size whose rows are not whole 16-byte vectors fails the
	// variant's static_assert.
	broken := variant{name: "attention_bf16_hs100", file: "attention.cu", defines: []string{"-DLOOM_ATTENTION_DTYPE=bf16", "-DLOOM_ATTENTION_HS=100"},
		kernels: map[string]string{}}
	for _, name := range brokenVariantKernels {
		broken.kernels[name] = name
	}
	real := variantByKernel
	t.Cleanup(func() { variantByKernel = real })
	variantByKernel = func() map[string]variant {
		m := maps.Clone(real())
		for _, name := range brokenVariantKernels {
			m[name] = broken
		}
		return m
	}
	before = modules()
	for range 2 {
		for _, name := range brokenVariantKernels {
			_, err := d.Kernel(name)
			for _, want := range []string{"kernel " + name + ":", "attention.cu with -DLOOM_ATTENTION_DTYPE=bf16 -DLOOM_ATTENTION_HS=100", "rows must be whole 16-byte vectors"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("a variant that does not compile: %v, want an error mentioning %q", err, want)
				}
			}
		}
	}
	if n := modules() - before; n != 1 {
		t.Errorf("the broken variant was compiled %d times, want once", n)
	}
}
