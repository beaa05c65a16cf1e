package cuda

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// variant is one kernel of a kernel file compiled apart from the rest, as
// its own module, when a dispatch first needs it (see Device.lazyKernel):
// the file's source with the variant's macros defined holds that kernel
// function (and its tensor-core variant <function>_mma, if it has one) and
// no other. The file compiled without them, when the device opens, holds
// none of any variant's.
//
// The paged-attention and matrix-product kernels are variants: compiling
// all of them when the device opens took minutes of NVRTC, while a model
// needs a few (docs/CUDA.md has the figures). An attention kernel serves
// the catalog's kernels of every block size, which enters only its index
// arithmetic; a matrix product's has its tensor-core variant beside it
// (found as Open finds the others').
//
// The variants of a group, which a model's step uses together, are
// compiled concurrently when the first of them is needed: a dtype's GEMV
// and gated GEMV, with and without a norm before them (a decode step's
// projections and MLP), and an attention's single-pass and split kernels
// (a prefill and the decode steps, or short and long rows). A step's plan looks its kernels up one after another, so
// that its variants would otherwise compile one at a time.
type variant struct {
	function string   // such as "paged_attention_split_bf16_hs128"
	file     string   // the kernel file, such as "attention.cu"
	defines  []string // its macros, as NVRTC options
	kernels  []string // the catalog kernels the function serves
	groupKey string   // the variants compiled together; "" for none
}

// group returns the variants of v's group, v among them.
func (v variant) group() []variant {
	if v.groupKey == "" {
		return []variant{v}
	}
	return variantGroups()[v.groupKey]
}

func (v variant) String() string { return v.file + " with " + strings.Join(v.defines, " ") }

// variants lists every variant of the kernel files.
var variants = sync.OnceValue(func() []variant {
	var vs []variant
	for _, dt := range primitives.AttentionDTypes {
		for _, hs := range primitives.AttentionHeadSizes {
			for _, k := range []struct {
				macro        string
				split, sinks bool
			}{{"ATTENTION_SINGLE", false, false}, {"ATTENTION_SINGLE_SINKS", false, true}, {"ATTENTION_SPLIT", true, false}, {"ATTENTION_SPLIT_SINKS", true, true}} {
				name := primitives.PagedAttentionKernel
				if k.split {
					name = primitives.PagedAttentionSplitKernel
				}
				v := variant{file: "attention.cu", defines: []string{"-DLOOM_ATTENTION_KERNEL=" + k.macro, "-DLOOM_ATTENTION_DTYPE=" + dt.Short(), fmt.Sprintf("-DLOOM_ATTENTION_HS=%d", hs)},
					groupKey: fmt.Sprintf("attention %s %d %v", dt.Short(), hs, k.sinks)}
				if b := os.Getenv("LOOM_CUDA_ATTENTION_BLOCKS"); b != "" { // launch bounds (attention.cu's ATTENTION_BLOCKS), for measurement
					v.defines = append(v.defines, "-DLOOM_ATTENTION_BLOCKS="+b)
				}
				if b := os.Getenv("LOOM_CUDA_ATTENTION_CHUNK"); b != "" { // a chunk's K bytes (attention.cu's LOOM_ATTENTION_CHUNK_BYTES), for measurement
					v.defines = append(v.defines, "-DLOOM_ATTENTION_CHUNK_BYTES="+b)
				}
				if b := os.Getenv("LOOM_CUDA_ATTENTION_WARPS"); b != "" { // a block's warps (attention.cu's ATTENTION_WARPS, Caps.AttentionWarps), for measurement
					v.defines = append(v.defines, "-DLOOM_ATTENTION_BLOCK_WARPS="+b)
				}
				if b := os.Getenv("LOOM_CUDA_ATTENTION_CHAINS"); b != "" { // the scores' accumulators (attention.cu's ATTENTION_S_CHAINS), for measurement
					v.defines = append(v.defines, "-DLOOM_ATTENTION_S_CHAINS="+b)
				}
				if os.Getenv("LOOM_CUDA_ATTENTION_TRANSPOSE") == "shfl" { // P transposed by shuffles, not movmatrix (attention.cu's transpose8), for measurement
					v.defines = append(v.defines, "-DLOOM_ATTENTION_SHUFFLE_TRANSPOSE")
				}
				for _, bs := range primitives.AttentionBlockSizes {
					v.kernels = append(v.kernels, name(dt, hs, bs, k.sinks))
				}
				// The function is the catalog kernels' name less the block size.
				v.function = strings.Replace(v.kernels[0], fmt.Sprintf("_bs%d", primitives.AttentionBlockSizes[0]), "", 1)
				vs = append(vs, v)
			}
		}
	}
	for _, dt := range primitives.MatMulDTypes {
		for _, k := range []struct{ name, macro, mma string }{
			{primitives.MatMulGEMVKernel(dt), "GEMV_KERNEL", "GEMV_MMA_KERNEL"},
			{primitives.MatMulSiLUMulKernel(dt), "GATED_GEMV_KERNEL", "GATED_MMA_KERNEL"},
			{primitives.AddRMSNormMatMulKernel(dt), "NORM_GEMV_KERNEL", "NORM_GEMV_MMA_KERNEL"},
			{primitives.AddRMSNormMatMulSiLUMulKernel(dt), "NORM_GATED_KERNEL", "NORM_GATED_MMA_KERNEL"},
			{primitives.MatMulTiledKernel(dt), "TILED_KERNEL", "TILED_MMA_KERNEL"},
		} {
			v := variant{function: k.name, file: "matmul.cu", defines: []string{"-DLOOM_MATMUL_KERNEL=" + k.macro, "-DLOOM_MATMUL_DTYPE=" + dt.Short()},
				kernels: []string{k.name}}
			if dt != graph.Float32 { // the dtypes with tensor-core kernels (primitives.MatMulParams.MMA)
				v.defines = append(v.defines, "-DLOOM_MATMUL_MMA_KERNEL="+k.mma)
			}
			// For measurement: NVRTC options (-D…) that tune the tensor-core
			// GEMV (matmul.cu's LOOM_MMA_* macros).
			v.defines = append(v.defines, strings.Fields(os.Getenv("LOOM_CUDA_MATMUL_DEFS"))...)
			// The bulk GEMV's kernels are compiled only where it is on
			// (envBulk), so that without it the modules are those that ran.
			if bulkAsked() {
				v.defines = append(v.defines, "-DLOOM_MATMUL_BULK")
			}
			if k.macro != "TILED_KERNEL" {
				v.groupKey = "gemv " + dt.Short()
			}
			vs = append(vs, v)
		}
	}
	return vs
})

// variantGroups lists the variants of each group.
var variantGroups = sync.OnceValue(func() map[string][]variant {
	m := map[string][]variant{}
	for _, v := range variants() {
		if v.groupKey != "" {
			m[v.groupKey] = append(m[v.groupKey], v)
		}
	}
	return m
})

// variantByKernel finds the variant that holds each catalog kernel
// compiled at first use.
var variantByKernel = sync.OnceValue(func() map[string]variant {
	m := map[string]variant{}
	for _, v := range variants() {
		for _, k := range v.kernels {
			m[k] = v
		}
	}
	return m
})

// variantOf returns the variant that holds the named catalog kernel;
// false for a kernel compiled when the device opens (or none).
func variantOf(kernel string) (variant, bool) {
	v, ok := variantByKernel()[kernel]
	return v, ok
}

// bulkAsked reports whether LOOM_CUDA_GEMV_BULK asks for the bulk GEMV
// (any value but empty and 0; envBulk parses it).
func bulkAsked() bool {
	v := os.Getenv("LOOM_CUDA_GEMV_BULK")
	return v != "" && v != "0"
}
