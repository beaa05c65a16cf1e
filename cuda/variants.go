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
// holds the block sizes, with and without sinks, single pass and split,
// which call one instantiation of the attention per pass of heads (1, 2
// and 4): compiling all of them when the device opens took minutes of
// NVRTC, while a model needs one (docs/CUDA.md has the figures).
type variant struct {
	name    string   // such as "attention_bf16_hs128"
	file    string   // the kernel file, such as "attention.cu"
	defines []string // its macros, as NVRTC options
	kernels []string // the catalog kernels it holds
}

func (v variant) String() string { return v.file + " with " + strings.Join(v.defines, " ") }

// options are the NVRTC options of the variant for sm_<arch>.
func (v variant) options(arch string) []string { return append(compileOptions(arch), v.defines...) }

// variants lists every variant of the kernel files.
var variants = sync.OnceValue(func() []variant {
	var vs []variant
	for _, dt := range primitives.AttentionDTypes {
		for _, hs := range primitives.AttentionHeadSizes {
			v := variant{name: fmt.Sprintf("attention_%s_hs%d", dt.Short(), hs), file: "attention.cu", defines: []string{"-DLOOM_ATTENTION_DTYPE=" + dt.Short(), fmt.Sprintf("-DLOOM_ATTENTION_HS=%d", hs)}}
			for _, bs := range primitives.AttentionBlockSizes {
				for _, sinks := range []bool{false, true} {
					v.kernels = append(v.kernels, primitives.PagedAttentionKernel(dt, hs, bs, sinks), primitives.PagedAttentionSplitKernel(dt, hs, bs, sinks))
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
		for _, k := range v.kernels {
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
