package cuda

import (
	"context"
	"embed"
	"fmt"
	"github.com/loomrt/loom/internal/fiberswitch"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// emulateFiles are the emulation's shim and driver, embedded so that the
// test binary runs anywhere.
//
//go:embed testdata/emulate
var emulateFiles embed.FS

// TestGEMVMMAEmulated runs the GEMV and gated GEMV of kernels/matmul.cu on
// the host, without a GPU: the FMA kernels at batch 1 (float32, bit for
// bit the same for every split of K over warps and grid, the gated GEMV
// bit for bit the GEMV's outputs through silu_mul's formula) and the
// tensor-core ones as follows. The file's code up to the
// tiled tensor-core kernel, compiled by g++ against testdata/emulate/shim.h
// (a block's threads are fibers of one host thread; mma.sync is emulated from the 32
// lanes' fragments in the PTX ISA's layout), driven by
// testdata/emulate/gemv_mma.cpp (bfloat16: results against a float64
// reference, bit for bit the same for every split, tile height and grid
// and for each row alone, and the gated GEMV bit for bit the matmul's
// outputs through silu_mul's formula). It checks the fragment layouts,
// slices, splits and epilogues, not the GPU's rounding inside mma.sync.
// The norms fused into them (add_rms_norm_matmul_<dt>[_mma] and
// add_rms_norm_matmul_silu_mul_<dt>[_mma], float32 and bfloat16): bit for
// bit add_rms_norm's row (common.cuh's add_rms_norm_regs, which norm.cu's
// add_rms_norm runs) followed by the GEMV or gated GEMV of it, the sum
// stored once. The cluster variants (matmul_bf16_gemv_mma_ring,
// matmul_silu_mul_bf16_mma_ring; a cluster's blocks at once, their shared
// memory read by each other) bit for bit the tile loop's outputs from 9 to
// 130 rows, with aligned and offset x. The bulk variants
// (matmul_bf16_gemv_mma_bulk, matmul_silu_mul_bf16_mma_bulk and the fused
// norms'; shim.h keeps their mbarriers and lands a bulk copy only when its
// mbarrier is polled) bit for bit the tile loop's over splits, tile
// heights, rings that wrap and grids, with aligned and offset x and
// weights, each weight byte copied once, each kernel in both its variants:
// the first ring fill copied after the wait (late) and before it
// (<name>_early), the same bits. Each launch also holds the weight spans the blocks prefetch
// before grid_dependency_wait (common.cuh's prefetch_l2 reports them to
// the shim) to the rows of each block's first step, inside the weights.
func TestGEMVMMAEmulated(t *testing.T) {
	files := emulationSources(t, "seconds of g++ and host work")
	src := files["matmul.cu"]
	cut := strings.Index(src, "// ---- large M on tensor cores")
	if cut < 0 {
		t.Fatal("matmul.cu: the tiled tensor-core section's heading is gone; update the emulation's cut")
	}
	// The kernels the driver calls, instantiated as their variants are
	// (the file's selection, at its end, is past the cut).
	src = src[:cut] + "GEMV_KERNEL(f32, float)\nGATED_GEMV_KERNEL(f32, float)\nGEMV_MMA_KERNEL(bf16, bf16_t)\nGATED_MMA_KERNEL(bf16, bf16_t)\n" +
		"NORM_GEMV_KERNEL(f32, float)\nNORM_GATED_KERNEL(f32, float)\nNORM_GEMV_MMA_KERNEL(bf16, bf16_t)\nNORM_GATED_MMA_KERNEL(bf16, bf16_t)\n"
	replace := []replacement{
		{`asm\("ld\.global\.nc\.L1::no_allocate\.v4\.u32[^"]*"[^;]*;`, `v = *(const uint4*)(row + k);`},
		{`asm\("mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16[^"]*"[^;]*;`, `emu_mma_bf16(d, a0, a1, a2, a3, b0, b1);`},
		{`asm\("mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.f16[^"]*"[^;]*;`, `abort(); // float16 fragments are not emulated`},
		f16Unemulated,
		// The cluster GEMV's (shim.h's launch_cluster): shared addresses
		// are offsets into the block's dynamic shared memory, with the
		// rank of a cluster's block above them; the copies synchronous.
		{`extern __shared__ __align__\(16\) u8 ring_smem\[\];`, `u8* ring_smem = emuSmem;`},
		{`asm\("\{ \.reg \.u64 t; cvta\.to\.shared[^"]*"[^;]*;`, `r = (u32)((const unsigned char*)p - emuSmem);`},
		{`asm volatile\("cp\.async\.cg\.shared\.global[^"]*"[^;]*;`, `if (ok) memcpy(emuSmem + dst, src, 16); else memset(emuSmem + dst, 0, 16);`},
		{`asm volatile\("cp\.async\.commit_group;[^"]*"[^;]*;`, ``},
		{`asm volatile\("mov\.u32 %0, %%cluster_ctarank;"[^;]*;`, `r = emuRank;`},
		{`asm volatile\("barrier\.cluster[^"]*"[^;]*;`, `emuClusterBar->arrive_and_wait();`},
		{`asm volatile\("mapa[^"]*"[^;]*;`, `ra = a | rank << 24;`},
		{`asm volatile\("ld\.shared::cluster[^"]*"[^;]*;`, `memcpy(&v, emuClusterSmem[ra >> 24] + (ra & 0xffffff), 4);`},
		// The bulk GEMV's (shim.h's emu_mbar_*, emu_bulk_*): copies land
		// when their mbarrier is polled.
		{`extern __shared__ __align__\(16\) u8 bulk_smem\[\];`, `#define bulk_smem emuSmem`},
		{`asm volatile\("mbarrier\.init[^"]*"[^;]*;`, `emu_mbar_init(bar, count);`},
		{`asm volatile\("fence\.mbarrier_init[^"]*"[^;]*;`, ``},
		{`asm volatile\("mbarrier\.arrive\.expect_tx[^"]*"[^;]*;`, `emu_mbar_expect(bar, bytes);`},
		{`asm volatile\("\{ \.reg \.pred p; mbarrier\.try_wait\.parity[^"]*"[^;]*;`, `done = emu_mbar_try_wait(bar, parity);`},
		{`asm volatile\("cp\.async\.bulk\.shared::cluster\.global[^"]*"[^;]*;`, `emu_bulk_copy(dst, src, bytes, bar);`},
		{`asm volatile\("cp\.async\.bulk\.prefetch\.L2[^"]*"[^;]*;`, `emu_bulk_prefetch(src, bytes);`},
	}
	emulate(t, "matmul.cu", "#include \"shim.h\"\n#define LOOM_MATMUL_BULK\n", src, "gemv_mma.cpp", replace)
}

// TestQuantizedEmulated runs the quantized matmul of kernels/quantized.cu
// on the host the same way, driven by testdata/emulate/qmatmul.cpp:
// float32 and bfloat16 x, 4- and 8-bit codes, groups of 32, 64 and 128,
// awkward shapes, against a float64 reference on the dequantised weights;
// bit for bit the same with one and two outputs a warp, on grids that
// loop, with misaligned codes or x, and for each row of x alone; and the
// code rows each block prefetches before grid_dependency_wait.
func TestQuantizedEmulated(t *testing.T) {
	files := emulationSources(t, "seconds of g++ and host work")
	emulate(t, "quantized.cu", "", files["quantized.cu"], "qmatmul.cpp", []replacement{
		{`asm\("lop3\.b32 %0, %1, %2, %3, 0xea;"[^;]*;`, `r = (a & b) | c;`},
		f16Unemulated,
	})
}

// emulationSources skips an emulation under -short (cost: how long its
// host threads take), runs it beside the others (they are separate host
// programs) and returns the kernel files' sources.
func emulationSources(t *testing.T, cost string) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip(cost)
	}
	t.Parallel()
	files, err := sourceFiles()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// replacement replaces a device-only statement (an asm string, its
// operands, the semicolon) with the host's form.
type replacement struct{ re, with string }

// f16Unemulated is common.cuh's float16 conversion, which no emulation
// takes.
var f16Unemulated = replacement{`asm\("cvt\.f32\.f16[^"]*"[^;]*;`, `f = 0; abort(); // float16 is not emulated`}

// emulate compiles src, a kernel file's source, with its device-only
// statements replaced, after prelude (default: testdata/emulate/shim.h's
// include) as <file>.h, which the driver includes, with g++ against the
// embedded testdata/emulate files (shim.h, the driver, extra), and fails
// unless the driver prints PASS.
func emulate(t *testing.T, file, prelude, src, driver string, replace []replacement, extra ...string) {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the emulation's fibers switch with x86-64 code (testdata/emulate/shim.h)")
	}
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skipf("no g++ to build the emulation with: %v", err)
	}
	for _, r := range replace {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(src) {
			t.Fatalf("%s: no statement matches %q; update the emulation", file, r.re)
		}
		src = re.ReplaceAllLiteralString(src, r.with)
	}
	for _, asm := range []string{"asm(", "asm volatile(\"cp.", "asm volatile(\"ldmatrix"} {
		if i := strings.Index(src, asm); i >= 0 {
			t.Fatalf("%s has device assembly the emulation does not replace: %.80s", file, src[i:])
		}
	}
	if prelude == "" {
		prelude = "#include \"shim.h\"\n"
	}
	dir := t.TempDir()
	src = prelude + strings.ReplaceAll(src, `extern "C"`, "")
	if err := os.WriteFile(filepath.Join(dir, file+".h"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fiber_switch.h"), []byte(fiberswitch.Source), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{"shim.h", driver}, extra...) {
		b, err := emulateFiles.ReadFile("testdata/emulate/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "emulation")
	// The matmul kernels' tuning macros as the device compiles them
	// (variants.go); the other kernels have none.
	args := append([]string{"-std=c++20", "-O1", "-pthread", "-w", "-fpermissive"}, strings.Fields(os.Getenv("LOOM_CUDA_MATMUL_DEFS"))...)
	if out, err := exec.Command(cxx, append(args, "-o", bin, filepath.Join(dir, driver))...).CombinedOutput(); err != nil {
		t.Fatalf("building the emulation: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("emulated %s: %v\n%s", file, err, out)
	}
	t.Logf("emulated %s: %s", file, strings.TrimSpace(string(out)))
}

// TestPagedAttentionEmulated runs the split paged-attention kernel of
// kernels/attention.cu on the host, without a GPU (testdata/emulate:
// threads for lanes, attention_shim.h for its shuffles, ballots, barriers,
// ldmatrix, movmatrix and bfloat16 mma.sync, the cp.async copies made
// synchronous), against a float64 reference
// (testdata/emulate/attention.cpp), in the variants that cover its
// layouts: on tensor cores bfloat16 rows of 128 (chunks of 8 keys, the
// swizzled ring), 256 (chunks of 4, 3 blocks' registers) and 80 (padded
// rows, an odd number of k-tile pairs), with 8 warps a block at 128
// (chunks of 4) and 256 (chunks of 2, passes of 4 heads); on the lanes
// float32 rows of 80 (lanes past the row idle) and 96 in chunks of 256
// bytes; and the measurement variants of the tensor-core path, P
// transposed by shuffles (bfloat16 rows of 64) and the scores in 4
// accumulators (rows of 96). GQA groups of 1 to 16 (one pass, a pass and a
// part, several passes). It checks the kernel's indexing, fragment layouts, masks,
// rings and merges, not the GPU's rounding or the copies' timing.
func TestPagedAttentionEmulated(t *testing.T) {
	files := emulationSources(t, "seconds of g++ and host work a variant")
	// The device-only statements, each replaced by the host's form (a
	// float16 conversion aborts: the driver runs bfloat16 and float32).
	replace := []replacement{
		{`asm volatile\("cp\.async\.cg\.shared\.global[^"]*"[^;]*;`, `if (ok) memcpy(dst, src, 16); else memset(dst, 0, 16); (void)d;`},
		{`asm volatile\("cp\.async\.commit_group;"\);`, ``},
		{`asm volatile\("cp\.async\.wait_group[^"]*"[^;]*;`, ``},
		{`asm volatile\("ldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16[^"]*"[^;]*;`, `emu_ldsm4(r, row, false); (void)a;`},
		{`asm volatile\("ldmatrix\.sync\.aligned\.m8n8\.x4\.trans\.shared\.b16[^"]*"[^;]*;`, `emu_ldsm4(r, row, true); (void)a;`},
		{`asm\("movmatrix\.sync\.aligned\.m8n8\.trans\.b16[^"]*"[^;]*;`, `r = emu_movmatrix(x);`},
		{`asm\("mma\.sync\.aligned\.m16n8k8\.row\.col\.f32\.bf16[^"]*"[^;]*;`, `emu_mma8_bf16(d, a0, a1, b);`},
		{`asm\("mma\.sync\.aligned\.m16n8k8\.row\.col\.f32\.f16[^"]*"[^;]*;`, `abort(); // float16 fragments are not emulated`},
		{`asm\("cvt\.rn\.bf16x2\.f32[^"]*"[^;]*;`, `r = f32_to_bf16(a) | (u32)f32_to_bf16(b) << 16;`},
		{`asm\("cvt\.rn\.f16x2\.f32[^"]*"[^;]*;`, `r = 0; abort(); // float16 is not emulated`},
		f16Unemulated,
	}
	variants := []struct{ dtype, hs, define string }{
		{"bf16", "128", ""}, {"bf16", "256", ""}, {"bf16", "80", ""}, {"f32", "80", ""},
		{"bf16", "128", "LOOM_ATTENTION_BLOCK_WARPS 8"}, {"bf16", "256", "LOOM_ATTENTION_BLOCK_WARPS 8"},
		{"f32", "96", "LOOM_ATTENTION_CHUNK_BYTES 256"}, {"bf16", "64", "LOOM_ATTENTION_SHUFFLE_TRANSPOSE"},
		{"bf16", "96", "LOOM_ATTENTION_S_CHAINS 4"},
	}
	for _, v := range variants {
		name, defines := v.dtype+"_hs"+v.hs, ""
		if v.define != "" {
			name += "_" + strings.ReplaceAll(v.define, " ", "_")
			defines = "#define " + v.define + "\n"
		}
		t.Run(name, func(t *testing.T) {
			prelude := fmt.Sprintf("#include \"attention_shim.h\"\n#define LOOM_ATTENTION_KERNEL ATTENTION_SPLIT\n#define LOOM_ATTENTION_DTYPE %s\n#define LOOM_ATTENTION_HS %s\n%s",
				v.dtype, v.hs, defines)
			emulate(t, "attention.cu", prelude, files["attention.cu"], "attention.cpp", replace, "attention_shim.h")
		})
	}
}
