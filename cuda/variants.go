package cuda

import (
	"fmt"
	"strings"
	"sync"

	"github.com/loomrt/loom/primitives"
)

// variant is a part of a kernel file compiled apart from the rest, as its
// own module, when a dispatch first needs one of its kernels (see
// Device.lazyKernel): the file's source with the variant's macros defined
// holds the variant's kernels and no others. The file compiled without
// them, when the device opens, holds none of any variant's.
//
// Paged attention's kernels are variants by dtype and head size: each
// holds the single-pass and split kernels with and without sinks, which
// call one instantiation of the attention per pass of heads (1, 2 and 4),
// and serve every block size: compiling all of them when the device opens
// took minutes of NVRTC, while a model needs one (docs/CUDA.md has the
// figures).
type variant struct {
	name    string   // such as "attention_bf16_hs128"
	file    string   // the kernel file, such as "attention.cu"
	defines []string // its macros, as NVRTC options
	// kernels maps the catalog kernels it holds to the functions that
	// implement them: one function may serve several catalog kernels.
	kernels map[string]string
}

func (v variant) String() string { return v.file + " with " + strings.Join(v.defines, " ") }

// options are the NVRTC options of the variant for sm_<arch>.
func (v variant) options(arch string) []string { return append(compileOptions(arch), v.defines...) }

// variants lists every variant of the kernel files.
var variants = sync.OnceValue(func() []variant {
	var vs []variant
	for _, dt := range primitives.AttentionDTypes {
		for _, hs := range primitives.AttentionHeadSizes {
			v := variant{name: fmt.Sprintf("attention_%s_hs%d", dt.Short(), hs), file: "attention.cu",
				defines: []string{"-DLOOM_ATTENTION_DTYPE=" + dt.Short(), fmt.Sprintf("-DLOOM_ATTENTION_HS=%d", hs)}, kernels: map[string]string{}}
			for _, bs := range primitives.AttentionBlockSizes {
				for _, sinks := range []bool{false, true} {
					// The function is the catalog kernel less its block size.
					for _, name := range []string{primitives.PagedAttentionKernel(dt, hs, bs, sinks), primitives.PagedAttentionSplitKernel(dt, hs, bs, sinks)} {
						v.kernels[name] = strings.Replace(name, fmt.Sprintf("_bs%d", bs), "", 1)
					}
				}
			}
			vs = append(vs, v)
		}
	}
	return vs
})

// variantByKernel finds the variant that holds each kernel compiled at
// first use.
var variantByKernel = sync.OnceValue(func() map[string]variant {
	m := map[string]variant{}
	for _, v := range variants() {
		for k := range v.kernels {
			m[k] = v
		}
	}
	return m
})

// variantOf returns the variant that holds the named kernel; false for a
// kernel compiled when the device opens (or none).
func variantOf(kernel string) (variant, bool) {
	v, ok := variantByKernel()[kernel]
	return v, ok
}
