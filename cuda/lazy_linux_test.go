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

// TestLazyVariants: a variant is compiled when the first of its kernels is
// looked up, into one module, the block sizes' kernels one function, and
// the other variants of its group with it; a variant that does not compile
// fails every lookup of its kernels with an error naming the kernel, the
// variant and NVRTC's message, and is compiled once.
func TestLazyVariants(t *testing.T) {
	d := device(t)
	modules := func() int {
		d.lazyMu.Lock()
		defer d.lazyMu.Unlock()
		return len(d.lazyModules)
	}
	v, ok := variantOf(primitives.PagedAttentionSplitKernel(graph.BFloat16, 128, 16, false))
	if !ok {
		t.Fatal("the bfloat16 split attention of head size 128 is not a variant")
	}
	before := modules()
	var fn uintptr
	for _, name := range v.kernels {
		k, err := d.Kernel(name)
		if err != nil {
			t.Fatal(err)
		}
		if f := k.(*kernel).fn; f == 0 || fn != 0 && f != fn {
			t.Fatalf("kernel %s is not the function %s that serves the other block sizes", name, v.function)
		} else {
			fn = f
		}
	}
	group := v.group()
	if n := modules() - before; n > len(group) {
		t.Errorf("the %d kernels of %s took %d modules, want one for each of the %d variants of its group", len(v.kernels), v, n, len(group))
	}
	// The group was compiled alongside.
	before = modules()
	for _, w := range group {
		if _, err := d.Kernel(w.kernels[0]); err != nil {
			t.Fatal(err)
		}
	}
	if n := modules() - before; n != 0 || len(group) < 2 {
		t.Errorf("the %d variants of %s's group took %d more modules, want none", len(group), v, n)
	}

	// A head size whose rows are not whole 16-byte vectors fails the
	// variant's static_assert.
	broken := variant{function: "paged_attention_split_bf16_hs100", file: "attention.cu",
		defines: []string{"-DLOOM_ATTENTION_KERNEL=ATTENTION_SPLIT", "-DLOOM_ATTENTION_DTYPE=bf16", "-DLOOM_ATTENTION_HS=100"}, kernels: brokenVariantKernels}
	real := variantByKernel
	t.Cleanup(func() { variantByKernel = real })
	variantByKernel = func() map[string]variant {
		m := maps.Clone(real())
		for _, name := range broken.kernels {
			m[name] = broken
		}
		return m
	}
	before = modules()
	for range 2 {
		for _, name := range broken.kernels {
			_, err := d.Kernel(name)
			for _, want := range []string{"kernel " + name + ":", "attention.cu with -DLOOM_ATTENTION_KERNEL=ATTENTION_SPLIT -DLOOM_ATTENTION_DTYPE=bf16 -DLOOM_ATTENTION_HS=100", "rows must be whole 16-byte vectors"} {
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
