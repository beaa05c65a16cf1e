package primitives

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
)

// TestMatMulLowering checks the params, the kernel each shape lowers to
// and the path it counts: batch strides in matrices (0 where broadcast),
// the merge of a's batch into M when b is shared, the GEMV choice, and the
// small-M path up to MatMulSmallM rows on the CPU and MatMulSIMDGroupRows
// on Metal.
func TestMatMulLowering(t *testing.T) {
	for _, c := range []struct {
		name   string
		m      MatMul
		a, b   []int
		kernel string
		want   MatMulParams
		device string // "cpu" when empty
		path   string // the counter; from the kernel when empty
	}{
		{"decode", MatMul{TransposeB: true}, []int{1, 64}, []int{32, 64}, "matmul_f32_gemv",
			MatMulParams{M: 1, N: 32, K: 64, Batch: 1, TransposeB: 1}, "", ""},
		{"tokens share weights", MatMul{TransposeB: true}, []int{2, 3, 50, 64}, []int{32, 64}, "matmul_f32_tiled",
			MatMulParams{M: 300, N: 32, K: 64, Batch: 1, TransposeB: 1}, "", ""},
		{"batched decode", MatMul{TransposeB: true}, []int{8, 1, 64}, []int{32, 64}, "matmul_f32_gemv",
			MatMulParams{M: 8, N: 32, K: 64, Batch: 1, TransposeB: 1}, "", "matmul_small_m"},
		{"most rows of the small-M path", MatMul{TransposeB: true}, []int{MatMulSmallM, 64}, []int{32, 64}, "matmul_f32_gemv",
			MatMulParams{M: MatMulSmallM, N: 32, K: 64, Batch: 1, TransposeB: 1}, "", "matmul_small_m"},
		{"one row past the small-M path", MatMul{TransposeB: true}, []int{MatMulSmallM + 1, 64}, []int{32, 64}, "matmul_f32_tiled",
			MatMulParams{M: MatMulSmallM + 1, N: 32, K: 64, Batch: 1, TransposeB: 1}, "", ""},
		{"batched decode on CUDA's FMA kernels", MatMul{TransposeB: true}, []int{8, 64}, []int{32, 64}, "matmul_f32_tiled",
			MatMulParams{M: 8, N: 32, K: 64, Batch: 1, TransposeB: 1}, "cuda", ""},
		{"decode on Metal", MatMul{TransposeB: true}, []int{1, 64}, []int{32, 64}, "matmul_f32_gemv",
			MatMulParams{M: 1, N: 32, K: 64, Batch: 1, TransposeB: 1}, "metal", ""},
		{"batched decode on Metal", MatMul{TransposeB: true}, []int{3, 1, 64}, []int{32, 64}, "matmul_f32_gemv",
			MatMulParams{M: 3, N: 32, K: 64, Batch: 1, TransposeB: 1}, "metal", "matmul_small_m"},
		{"the most rows of Metal's small-M path", MatMul{TransposeB: true}, []int{MatMulSIMDGroupRows, 64}, []int{32, 64}, "matmul_f32_gemv",
			MatMulParams{M: MatMulSIMDGroupRows, N: 32, K: 64, Batch: 1, TransposeB: 1}, "metal", "matmul_small_m"},
		{"one row past Metal's small-M path", MatMul{TransposeB: true}, []int{MatMulSIMDGroupRows + 1, 64}, []int{32, 64}, "matmul_f32_tiled",
			MatMulParams{M: MatMulSIMDGroupRows + 1, N: 32, K: 64, Batch: 1, TransposeB: 1}, "metal", ""},
		{"small M, weights stored [K, N]", MatMul{}, []int{8, 64}, []int{64, 32}, "matmul_f32_gemv",
			MatMulParams{M: 8, N: 32, K: 64, Batch: 1}, "", "matmul_small_m"},
		{"one token per sequence shares weights", MatMul{}, []int{4, 1, 8}, []int{1, 8, 2}, "matmul_f32_gemv",
			MatMulParams{M: 4, N: 2, K: 8, Batch: 1}, "", "matmul_small_m"},
		{"transposed a does not merge", MatMul{TransposeA: true}, []int{3, 8, 5}, []int{8, 2}, "matmul_f32_gemv",
			MatMulParams{M: 5, N: 2, K: 8, Batch: 3, TransposeA: 1, BatchRank: 1,
				BatchShape: [MaxRank]uint32{3}, BatchStrideA: [MaxRank]uint32{1}}, "", "matmul_small_m"},
		{"both broadcast", MatMul{}, []int{2, 1, 5, 7}, []int{3, 7, 9}, "matmul_f32_gemv",
			MatMulParams{M: 5, N: 9, K: 7, Batch: 6, BatchRank: 2,
				BatchShape: [MaxRank]uint32{2, 3}, BatchStrideA: [MaxRank]uint32{1, 0}, BatchStrideB: [MaxRank]uint32{0, 1}}, "", "matmul_small_m"},
		{"batched gemv", MatMul{TransposeB: true}, []int{4, 1, 8}, []int{4, 2, 8}, "matmul_f32_gemv",
			MatMulParams{M: 1, N: 2, K: 8, Batch: 4, TransposeB: 1, BatchRank: 1,
				BatchShape: [MaxRank]uint32{4}, BatchStrideA: [MaxRank]uint32{1}, BatchStrideB: [MaxRank]uint32{1}}, "", ""},
	} {
		in := []graph.Spec{{DType: graph.Float32, Shape: c.a}, {DType: graph.Float32, Shape: c.b}}
		outs, err := c.m.Outputs(in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		device := c.device
		if device == "" {
			device = "cpu"
		}
		caps := Caps{Device: device}
		switch device {
		case "cpu":
			caps.GEMVMaxRows = MatMulSmallM
		case "metal":
			caps.GEMVMaxRows = MatMulSIMDGroupRows
		}
		l := NewLowering(in, outs, caps)
		if err := c.m.Lower(l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(l.Dispatches) != 1 {
			t.Fatalf("%s: %d dispatches, want 1", c.name, len(l.Dispatches))
		}
		d := l.Dispatches[0]
		if d.Kernel != c.kernel {
			t.Errorf("%s: kernel %s, want %s", c.name, d.Kernel, c.kernel)
		}
		if _, ok := LookupKernel(d.Kernel); !ok {
			t.Errorf("%s: kernel %s is not in the catalog", c.name, d.Kernel)
		}
		if got := *d.Params.(*MatMulParams); got != c.want {
			t.Errorf("%s: params\n got %+v\nwant %+v", c.name, got, c.want)
		}
		path := c.path
		if path == "" {
			path = "matmul_" + strings.TrimPrefix(c.kernel, "matmul_f32_")
		}
		if l.Counters[path] != 1 || len(l.Counters) != 1 {
			t.Errorf("%s: counters %v, want %s: 1", c.name, l.Counters, path)
		}
	}
}

// TestMatMulCUDAGeometry checks the CUDA lowering with tensor cores off
// (the default: the FMA kernels' dispatches, GEMV for one row only) and on
// (Caps.TensorCores: which products take them, with up to MatMulMMARows
// rows on the GEMV kernel, and their grids, blocks and MatMulParams.MMA).
func TestMatMulCUDAGeometry(t *testing.T) {
	type want struct {
		kernel      string
		grid, group Dim3
		shared      int
		counters    []string // each counted once; "matmul_mma" means MMA = 1
		split, rows uint32   // the tensor-core GEMV's Split and TileRows
	}
	gemv, tiled, mma := Dim3{GEMVThreads, 1, 1}, Dim3{MatMulThreads, 1, 1}, Dim3{MatMulMMAThreads, 1, 1}
	for _, c := range []struct {
		name    string
		m       MatMul
		dt      graph.DType
		a, b    []int
		off, on want
	}{
		{"lm_head, batch 8: 2 warps a tile of 16 outputs (9 waves of 2 rounds)", MatMul{TransposeB: true}, graph.BFloat16, []int{8, 1024}, []int{151936, 1024},
			want{"matmul_bf16_tiled", Dim3{4748, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_gemv", Dim3{2374, 1, 1}, gemv, 0, []string{"matmul_small_m", "matmul_mma"}, 2, 16}},
		{"lm_head, batch 32: 4 warps a tile (the tiles of x)", MatMul{TransposeB: true}, graph.BFloat16, []int{32, 1024}, []int{151936, 1024},
			want{"matmul_bf16_tiled", Dim3{4748, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_gemv", Dim3{4748, 1, 1}, gemv, 0, []string{"matmul_small_m", "matmul_mma"}, 4, 16}},
		{"gate+up GEMV: 4 warps a tile, one wave of one round", MatMul{TransposeB: true}, graph.Float16, []int{1, 1024}, []int{6144, 1024},
			want{"matmul_f16_gemv", Dim3{768, 1, 1}, gemv, 0, []string{"matmul_gemv"}, 0, 0},
			want{"matmul_f16_gemv", Dim3{192, 1, 1}, gemv, 0, []string{"matmul_gemv", "matmul_mma"}, 4, 16}},
		{"QKV, batch 32: 8 warps a tile (the tiles of x)", MatMul{TransposeB: true}, graph.BFloat16, []int{32, 1024}, []int{4096, 1024},
			want{"matmul_bf16_tiled", Dim3{128, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_gemv", Dim3{256, 1, 1}, gemv, 0, []string{"matmul_small_m", "matmul_mma"}, 8, 16}},
		{"64 rows, small N: tiles of 8 outputs", MatMul{TransposeB: true}, graph.BFloat16, []int{64, 1024}, []int{1024, 1024},
			want{"matmul_bf16_tiled", Dim3{32, 2, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_gemv", Dim3{128, 1, 1}, gemv, 0, []string{"matmul_small_m", "matmul_mma"}, 8, 8}},
		{"a column vector as x", MatMul{TransposeA: true, TransposeB: true}, graph.BFloat16, []int{3, 1000, 1}, []int{3, 9, 1000},
			want{"matmul_bf16_gemv", Dim3{2, 1, 3}, gemv, 0, []string{"matmul_gemv"}, 0, 0},
			want{"matmul_bf16_gemv", Dim3{1, 1, 3}, gemv, 0, []string{"matmul_gemv", "matmul_mma"}, 4, 8}},
		{"65 rows: tensor-core tiles", MatMul{TransposeB: true}, graph.BFloat16, []int{65, 1024}, []int{1001, 1024},
			want{"matmul_bf16_tiled", Dim3{32, 3, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_tiled", Dim3{8, 2, 1}, mma, 0, []string{"matmul_tiled", "matmul_mma"}, 0, 0}},
		{"float32 stays on FMA", MatMul{TransposeB: true}, graph.Float32, []int{8, 1024}, []int{1001, 1024},
			want{"matmul_f32_tiled", Dim3{32, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_f32_tiled", Dim3{32, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0}},
		{"float32 GEMV stays on FMA", MatMul{TransposeB: true}, graph.Float32, []int{1, 1024}, []int{1001, 1024},
			want{"matmul_f32_gemv", Dim3{126, 1, 1}, gemv, 0, []string{"matmul_gemv"}, 0, 0},
			want{"matmul_f32_gemv", Dim3{126, 1, 1}, gemv, 0, []string{"matmul_gemv"}, 0, 0}},
		{"transposed a stays on FMA", MatMul{TransposeA: true, TransposeB: true}, graph.BFloat16, []int{1024, 8}, []int{1001, 1024},
			want{"matmul_bf16_tiled", Dim3{32, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_tiled", Dim3{32, 1, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0}},
		{"weights [K, N] stay on FMA", MatMul{}, graph.BFloat16, []int{100, 1024}, []int{1024, 1001},
			want{"matmul_bf16_tiled", Dim3{32, 4, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0},
			want{"matmul_bf16_tiled", Dim3{32, 4, 1}, tiled, 0, []string{"matmul_tiled"}, 0, 0}},
		{"weights [K, N], one row", MatMul{}, graph.Float16, []int{1, 1024}, []int{1024, 1001},
			want{"matmul_f16_gemv", Dim3{126, 1, 1}, gemv, 0, []string{"matmul_gemv"}, 0, 0},
			want{"matmul_f16_gemv", Dim3{126, 1, 1}, gemv, 0, []string{"matmul_gemv"}, 0, 0}},
	} {
		in := []graph.Spec{{DType: c.dt, Shape: c.a}, {DType: c.dt, Shape: c.b}}
		outs, err := c.m.Outputs(in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, on := range []bool{false, true} {
			w := c.off
			if on {
				w = c.on
			}
			l := NewLowering(in, outs, Caps{Device: "cuda", Cores: 132, TensorCores: on})
			if err := c.m.Lower(l); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			d := l.Dispatches[0]
			if d.Kernel != w.kernel || d.Grid != w.grid || d.Group != w.group || d.SharedBytes != w.shared {
				t.Errorf("%s, tensor cores %v: %s grid %v group %v shared %d, want %s grid %v group %v shared %d",
					c.name, on, d.Kernel, d.Grid, d.Group, d.SharedBytes, w.kernel, w.grid, w.group, w.shared)
			}
			wantMMA := uint32(0)
			if slices.Contains(w.counters, "matmul_mma") {
				wantMMA = 1
			}
			if p := d.Params.(*MatMulParams); p.MMA != wantMMA || p.Split != w.split || p.TileRows != w.rows {
				t.Errorf("%s, tensor cores %v: MMA %d, Split %d, TileRows %d, want %d, %d, %d", c.name, on, p.MMA, p.Split, p.TileRows, wantMMA, w.split, w.rows)
			}
			wantCounters := map[string]int{}
			for _, k := range w.counters {
				wantCounters[k] = 1
			}
			if !maps.Equal(l.Counters, wantCounters) {
				t.Errorf("%s, tensor cores %v: counters %v, want %v", c.name, on, l.Counters, wantCounters)
			}
		}
	}
}

// TestMatMulStreamGeometry checks the streaming tensor-core GEMV's lowering
// (Caps.GEMVStream, mmaStreams): 2 to 8 rows of x with K a multiple of 256
// where the tile loop's grid is more than one wave of two blocks a
// multiprocessor (the lm_head), on a grid of at most two blocks a
// multiprocessor that loops over the tiles (mmaStreamGrid); other products
// as without it.
func TestMatMulStreamGeometry(t *testing.T) {
	for _, c := range []struct {
		name        string
		m, n, k     int
		grid        int
		split, rows uint32
		stream      uint32
	}{
		{"lm_head, batch 8: 2 warps a tile, 9 tiles a warp", 8, 151936, 1024, 264, 2, 16, 1},
		{"lm_head, batch 2", 2, 151936, 1024, 264, 2, 16, 1},
		{"lm_head, batch 1: in tiles (a tie)", 1, 151936, 1024, 2374, 2, 16, 0},
		{"lm_head, batch 9: in tiles", 9, 151936, 1024, 2374, 2, 16, 0},
		{"lm_head, K not a multiple of 256: in tiles", 4, 151936, 1000, 2374, 2, 16, 0},
		{"gate+up, batch 4: one wave, in tiles", 4, 6144, 1024, 192, 4, 16, 0},
		{"O, batch 8: one wave, in tiles", 8, 1024, 2048, 128, 8, 8, 0},
	} {
		in := []graph.Spec{{DType: graph.BFloat16, Shape: []int{c.m, c.k}}, {DType: graph.BFloat16, Shape: []int{c.n, c.k}}}
		mm := MatMul{TransposeB: true}
		outs, err := mm.Outputs(in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		l := NewLowering(in, outs, Caps{Device: "cuda", Cores: 132, TensorCores: true, GEMVStream: true})
		if err := mm.Lower(l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		d := l.Dispatches[0]
		p := d.Params.(*MatMulParams)
		if d.Grid != (Dim3{c.grid, 1, 1}) || p.MMA != 1 || p.Split != c.split || p.TileRows != c.rows || p.Stream != c.stream {
			t.Errorf("%s: grid %v MMA %d Split %d TileRows %d Stream %d, want grid %d, 1, %d, %d, %d", c.name, d.Grid, p.MMA, p.Split, p.TileRows, p.Stream, c.grid, c.split, c.rows, c.stream)
		}
		if got := l.Counters["matmul_mma_stream"]; got != int(c.stream) {
			t.Errorf("%s: counters %v", c.name, l.Counters)
		}
	}
}

// TestGEMVSplitK checks the split of K over SIMD groups of the GEMV on a
// device that takes it (132 cores), through the grid it gives the kernel
// (8/split outputs a threadgroup): the fewest groups an output that give
// four threadgroups a core, no more than the row has 512-byte parts, none
// for tensor cores, [K, N] weights or a device without it.
func TestGEMVSplitK(t *testing.T) {
	for _, c := range []struct {
		name        string
		m           MatMul
		n, k        int
		caps        Caps
		split, grid int
	}{
		{"down: 1024 outputs of 3072", MatMul{TransposeB: true}, 1024, 3072, Caps{Cores: 132, GEMVSplitK: true}, 8, 1024},
		{"o: 1024 outputs of 2048", MatMul{TransposeB: true}, 1024, 2048, Caps{Cores: 132, GEMVSplitK: true}, 8, 1024},
		{"kv: a row of 4 parts", MatMul{TransposeB: true}, 1024, 1024, Caps{Cores: 132, GEMVSplitK: true}, 4, 512},
		{"qkv", MatMul{TransposeB: true}, 4096, 1024, Caps{Cores: 132, GEMVSplitK: true}, 2, 1024},
		{"gate+up: enough outputs", MatMul{TransposeB: true}, 6144, 1024, Caps{Cores: 132, GEMVSplitK: true}, 1, 768},
		{"lm_head", MatMul{TransposeB: true}, 151936, 1024, Caps{Cores: 132, GEMVSplitK: true}, 1, 18992},
		{"a short row", MatMul{TransposeB: true}, 9, 100, Caps{Cores: 132, GEMVSplitK: true}, 1, 2},
		{"tensor cores", MatMul{TransposeB: true}, 1024, 3072, Caps{Cores: 132, GEMVSplitK: true, TensorCores: true}, 0, 128},
		{"weights [K, N]", MatMul{}, 1024, 3072, Caps{Cores: 132, GEMVSplitK: true}, 0, 128},
		{"not the device's", MatMul{TransposeB: true}, 1024, 3072, Caps{Cores: 132}, 0, 128},
	} {
		b := []int{c.n, c.k}
		if !c.m.TransposeB {
			b = []int{c.k, c.n}
		}
		in := []graph.Spec{{DType: graph.BFloat16, Shape: []int{1, c.k}}, {DType: graph.BFloat16, Shape: b}}
		outs, err := c.m.Outputs(in)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLowering(in, outs, c.caps)
		if err := c.m.Lower(l); err != nil {
			t.Fatal(err)
		}
		d := l.Dispatches[0]
		if split := l.Counters["matmul_gemv_split_k"] == 1; split != (c.split > 0) || d.Grid.X != c.grid {
			t.Errorf("%s: split %v, grid %v; want split %v, grid %d", c.name, split, d.Grid, c.split > 0, c.grid)
		}
	}
}

// TestMatMulSiLUMulLowering checks the gated product's two lowerings: the
// gated kernel up to Caps.GatedGEMVMaxRows rows of x (all of x's leading
// dims), else the matmul into a scratch buffer of the gate and up products
// and silu_mul reading it.
func TestMatMulSiLUMulLowering(t *testing.T) {
	for _, c := range []struct {
		name    string
		x       []int
		maxRows int
		want    []string
	}{
		{"decode", []int{1, 64}, 1, []string{"matmul_silu_mul_f16"}},
		{"rows of x", []int{2, 3, 64}, 6, []string{"matmul_silu_mul_f16"}},
		{"one row past", []int{7, 64}, 6, []string{"matmul_f16_tiled", "silu_mul_f16"}},
		{"no gated kernel", []int{1, 64}, 0, []string{"matmul_f16_gemv", "silu_mul_f16"}},
	} {
		in := []graph.Spec{{DType: graph.Float16, Shape: c.x}, {DType: graph.Float16, Shape: []int{2 * 5, 64}}}
		outs, err := MatMulSiLUMul{}.Outputs(in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		m := graph.NumElements(c.x[:len(c.x)-1])
		if want := append(slices.Clone(c.x[:len(c.x)-1]), 5); !slices.Equal(outs[0].Shape, want) {
			t.Fatalf("%s: output %s, want shape %v", c.name, outs[0], want)
		}
		l := NewLowering(in, outs, Caps{Device: "test", GatedGEMVMaxRows: c.maxRows})
		if err := (MatMulSiLUMul{}).Lower(l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var kernels []string
		for _, d := range l.Dispatches {
			kernels = append(kernels, d.Kernel)
			if _, ok := LookupKernel(d.Kernel); !ok {
				t.Errorf("%s: kernel %s is not in the catalog", c.name, d.Kernel)
			}
		}
		if !slices.Equal(kernels, c.want) {
			t.Fatalf("%s: kernels %v, want %v", c.name, kernels, c.want)
		}
		if len(c.want) == 1 {
			d := l.Dispatches[0]
			if p := *d.Params.(*MatMulSiLUMulParams); p != (MatMulSiLUMulParams{M: uint32(m), N: 5, K: 64}) || d.Grid != (Dim3{1, m, 1}) || len(l.Scratch) != 0 {
				t.Errorf("%s: params %+v, grid %v, scratch %v", c.name, p, d.Grid, l.Scratch)
			}
			if l.Counters["matmul_silu_mul.fused"] != 1 {
				t.Errorf("%s: counters %v", c.name, l.Counters)
			}
			continue
		}
		mm, sm := l.Dispatches[0], l.Dispatches[1]
		scratch := Ref{ScratchRef, 0}
		if len(l.Scratch) != 1 || l.Scratch[0] != int64(m*10*2) || mm.Args[2].Ref != scratch || sm.Args[0].Ref != scratch || sm.Args[1].Ref != Out(0) {
			t.Errorf("%s: scratch %v, matmul args %v, silu_mul args %v", c.name, l.Scratch, mm.Args, sm.Args)
		}
		if p := *mm.Params.(*MatMulParams); p != (MatMulParams{M: uint32(m), N: 10, K: 64, Batch: 1, TransposeB: 1}) {
			t.Errorf("%s: matmul params %+v", c.name, p)
		}
		if p := *sm.Params.(*SiLUMulParams); p != (SiLUMulParams{Rows: uint32(m), N: 5}) {
			t.Errorf("%s: silu_mul params %+v", c.name, p)
		}
		if l.Counters["matmul_silu_mul.unfused"] != 1 || l.Counters["matmul_silu_mul.fused"] != 0 {
			t.Errorf("%s: counters %v", c.name, l.Counters)
		}
	}
}

// TestMatMulSiLUMulTensorCores checks the gated GEMV's lowering with
// Caps.TensorCores: float16 and bfloat16 take the tensor-core variant
// (MMA, a grid of 8-output tiles by mmaGEMVGrid, one row of blocks for all
// rows of x), float32 the FMA kernel's grid.
func TestMatMulSiLUMulTensorCores(t *testing.T) {
	for _, c := range []struct {
		name  string
		dt    graph.DType
		x     []int
		n     int
		grid  Dim3
		p     MatMulSiLUMulParams
		count string
	}{
		{"Qwen3-0.6B, batch 8: 4 warps a tile", graph.BFloat16, []int{8, 1024}, 3072, Dim3{192, 1, 1}, MatMulSiLUMulParams{M: 8, N: 3072, K: 1024, MMA: 1, Split: 4}, "matmul_silu_mul.mma"},
		{"many outputs: a warp a tile", graph.Float16, []int{1, 64}, 40000, Dim3{625, 1, 1}, MatMulSiLUMulParams{M: 1, N: 40000, K: 64, MMA: 1, Split: 1}, "matmul_silu_mul.mma"},
		{"64 rows: 8 warps a tile", graph.Float16, []int{2, 32, 64}, 40000, Dim3{5000, 1, 1}, MatMulSiLUMulParams{M: 64, N: 40000, K: 64, MMA: 1, Split: 8}, "matmul_silu_mul.mma"},
		{"float32 stays on FMA", graph.Float32, []int{3, 64}, 100, Dim3{13, 3, 1}, MatMulSiLUMulParams{M: 3, N: 100, K: 64}, ""},
	} {
		in := []graph.Spec{{DType: c.dt, Shape: c.x}, {DType: c.dt, Shape: []int{2 * c.n, c.x[len(c.x)-1]}}}
		outs, err := MatMulSiLUMul{}.Outputs(in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		l := NewLowering(in, outs, Caps{Device: "cuda", Cores: 132, TensorCores: true, GatedGEMVMaxRows: MatMulMMARows})
		if err := (MatMulSiLUMul{}).Lower(l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(l.Dispatches) != 1 {
			t.Fatalf("%s: %d dispatches, want 1", c.name, len(l.Dispatches))
		}
		d := l.Dispatches[0]
		if p := *d.Params.(*MatMulSiLUMulParams); p != c.p || d.Grid != c.grid || d.Group != (Dim3{GEMVThreads, 1, 1}) {
			t.Errorf("%s: params %+v grid %v group %v, want %+v, %v", c.name, p, d.Grid, d.Group, c.p, c.grid)
		}
		if c.count != "" && l.Counters[c.count] != 1 {
			t.Errorf("%s: counters %v, want %s", c.name, l.Counters, c.count)
		}
	}
}

// TestMatMulRingGeometry checks the cluster GEMV's lowering
// (Caps.ClusterGEMVRows, ringGEMV): from 9 rows to the device's bound, K a
// multiple of 256, shared memory that fits and a grid of at most a block a
// multiprocessor, in clusters of RingCluster blocks of RingTiles tiles;
// the gated GEMV's too, fused up to the bound.
func TestMatMulRingGeometry(t *testing.T) {
	caps := Caps{Device: "cuda", Cores: 132, TensorCores: true, GatedGEMVMaxRows: MatMulMMARows, ClusterGEMVRows: 256}
	for _, c := range []struct {
		m, n, k int
		ring    bool
		kernel  string
	}{
		{32, 1024, 2048, true, "matmul_bf16_gemv"},
		{9, 1000, 1024, true, "matmul_bf16_gemv"},
		{9, 2048, 1024, false, "matmul_bf16_gemv"},    // 256 blocks
		{9, 4096, 1024, false, "matmul_bf16_gemv"},    // 512 blocks: the tile loop
		{100, 4096, 1024, false, "matmul_bf16_tiled"}, // and the tiled kernel past 64 rows
		{160, 1024, 3072, true, "matmul_bf16_gemv"},
		{8, 1024, 2048, false, "matmul_bf16_gemv"},    // the tile loop and stream's
		{32, 1024, 1000, false, "matmul_bf16_gemv"},   // K not whole chunks a slice
		{256, 1024, 3072, false, "matmul_bf16_tiled"}, // x's slice does not fit
		{300, 1024, 1024, false, "matmul_bf16_tiled"}, // past the bound
	} {
		in := []graph.Spec{{DType: graph.BFloat16, Shape: []int{c.m, c.k}}, {DType: graph.BFloat16, Shape: []int{c.n, c.k}}}
		m := MatMul{TransposeB: true}
		outs, err := m.Outputs(in)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLowering(in, outs, caps)
		if err := m.Lower(l); err != nil {
			t.Fatal(err)
		}
		d := l.Dispatches[0]
		p := d.Params.(*MatMulParams)
		if d.Kernel != c.kernel || (p.Ring == 1) != c.ring {
			t.Errorf("M=%d N=%d K=%d: %s, Ring %d; want %s, ring %v", c.m, c.n, c.k, d.Kernel, p.Ring, c.kernel, c.ring)
			continue
		}
		if !c.ring {
			continue
		}
		if want := (Dim3{Groups(Groups(c.n, 16), RingTiles) * RingCluster, 1, 1}); d.Grid != want || d.SharedBytes != RingSharedBytes(c.m, c.k) || p.MMA != 1 || p.TileRows != 16 {
			t.Errorf("M=%d N=%d K=%d: grid %v, shared %d, MMA %d, TileRows %d; want grid %v, shared %d, MMA 1, TileRows 16",
				c.m, c.n, c.k, d.Grid, d.SharedBytes, p.MMA, p.TileRows, want, RingSharedBytes(c.m, c.k))
		}
		if d.SharedBytes > RingMaxSharedBytes {
			t.Errorf("M=%d K=%d: %d shared bytes, more than %d", c.m, c.k, d.SharedBytes, RingMaxSharedBytes)
		}
	}
	// The Qwen3-0.6B gated GEMV (3,072 outputs, 768 blocks) stays on the
	// tile loop, and unfused past GatedGEMVMaxRows.
	for _, c := range []struct{ m, dispatches int }{{32, 1}, {100, 2}} {
		l := lowerGated(t, c.m, 6144, caps)
		if len(l.Dispatches) != c.dispatches {
			t.Fatalf("gated M=%d: %d dispatches, want %d", c.m, len(l.Dispatches), c.dispatches)
		}
		if p, ok := l.Dispatches[0].Params.(*MatMulSiLUMulParams); ok && p.Ring != 0 {
			t.Errorf("gated M=%d of 3,072 outputs: Ring %d, want the tile loop", c.m, p.Ring)
		}
	}
	// The gated GEMV: fused in clusters up to the bound, past
	// GatedGEMVMaxRows; 8 outputs a tile (512 outputs: 128 blocks).
	for _, m := range []int{32, 160} {
		l := lowerGated(t, m, 1024, caps)
		if len(l.Dispatches) != 1 {
			t.Fatalf("gated M=%d: %d dispatches, want 1", m, len(l.Dispatches))
		}
		d := l.Dispatches[0]
		p := d.Params.(*MatMulSiLUMulParams)
		if want := (Dim3{Groups(Groups(512, 8), RingTiles) * RingCluster, 1, 1}); p.Ring != 1 || p.MMA != 1 || d.Grid != want || d.SharedBytes != RingSharedBytes(m, 1024) {
			t.Errorf("gated M=%d: Ring %d, MMA %d, grid %v, shared %d; want ring, grid %v, shared %d", m, p.Ring, p.MMA, d.Grid, d.SharedBytes, want, RingSharedBytes(m, 1024))
		}
	}
}

// lowerGated lowers the bfloat16 gated GEMV of m rows of 1,024 columns by
// stacked weights [rows, 1024] (gate then up) for caps.
func lowerGated(t *testing.T, m, rows int, caps Caps) *Lowering {
	t.Helper()
	in := []graph.Spec{{DType: graph.BFloat16, Shape: []int{m, 1024}}, {DType: graph.BFloat16, Shape: []int{rows, 1024}}}
	outs, err := MatMulSiLUMul{}.Outputs(in)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLowering(in, outs, caps)
	if err := (MatMulSiLUMul{}).Lower(l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMatMulBulkGeometry holds the bulk GEMV's plan (Caps.GEMVBulk,
// bulkGEMVPlan) on an H100's 132 multiprocessors to the Qwen3-0.6B
// projections of 1 to 8 rows: a block a multiprocessor (or a tile),
// tiles of 16 rows, or 8 where 16 would leave multiprocessors idle,
// stages of whole tiles within StageBytes and no more than a block's
// tiles, the ring within the shared memory, the norms fused into it
// (their row not in the dynamic shared memory); and off where it does not
// apply.
func TestMatMulBulkGeometry(t *testing.T) {
	on := GEMVBulk{Stages: 3, StageBytes: 32 << 10, Blocks: 1}
	caps := Caps{Device: "cuda", Cores: 132, TensorCores: true, GatedGEMVMaxRows: MatMulMMARows, GEMVBulk: on}
	for _, c := range []struct {
		name                          string
		m, n, k                       int
		gated, norm                   bool
		grid, split, rows, stages, xs int // xs: x's rows in the shared memory
	}{
		{"qkv", 1, 4096, 1024, false, false, 132, 8, 16, 2, 1},
		{"qkv norm", 1, 4096, 1024, false, true, 132, 8, 16, 2, 0},
		{"o", 1, 1024, 2048, false, false, 128, 8, 8, 1, 1},
		{"down", 8, 1024, 3072, false, false, 128, 8, 8, 1, 8},
		{"gated", 1, 6144, 1024, true, false, 132, 8, 8, 3, 1},
		{"gated norm", 1, 6144, 1024, true, true, 132, 8, 8, 3, 0},
		{"gated 8", 8, 6144, 1024, true, false, 132, 8, 8, 2, 8}, // x takes a stage's room
		{"lm_head", 1, 151936, 1024, false, false, 132, 8, 16, 3, 1},
		{"few", 3, 40, 256, false, false, 5, 8, 8, 1, 3},
	} {
		var in []graph.Spec
		var prim Primitive
		bf := func(s ...int) graph.Spec { return graph.Spec{DType: graph.BFloat16, Shape: s} }
		switch {
		case c.norm:
			prim, in = AddRMSNormLinear{Eps: 1e-6, Gated: c.gated}, []graph.Spec{bf(c.m, c.k), bf(c.m, c.k), bf(c.k), bf(c.n, c.k)}
		case c.gated:
			prim, in = MatMulSiLUMul{}, []graph.Spec{bf(c.m, c.k), bf(c.n, c.k)}
		default:
			prim, in = MatMul{TransposeB: true}, []graph.Spec{bf(c.m, c.k), bf(c.n, c.k)}
		}
		outs, err := prim.Outputs(in)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLowering(in, outs, caps)
		if err := prim.Lower(l); err != nil {
			t.Fatal(err)
		}
		d := l.Dispatches[0]
		var bulk, split, rows uint32
		switch p := d.Params.(type) {
		case *MatMulParams:
			bulk, split, rows = p.Bulk, p.Split, p.TileRows
		case *MatMulSiLUMulParams:
			bulk, split, rows = p.Bulk, p.Split, 8
		case *AddRMSNormLinearParams:
			bulk, split, rows = p.Bulk, p.Split, p.TileRows
			if c.gated {
				rows = 8
			}
		}
		stageRows := int(rows)
		if c.gated {
			stageRows = 16
		}
		shared := BulkSharedBytes(c.xs, c.k, c.split, stageRows, c.stages)
		if len(l.Dispatches) != 1 || d.Grid != (Dim3{c.grid, 1, 1}) || int(split) != c.split || int(rows) != c.rows || int(bulk) != c.stages || d.SharedBytes != shared {
			t.Errorf("%s M=%d: %d dispatches, grid %v, split %d, rows %d, stages %d, %d shared bytes; want 1, %d, split %d, rows %d, stages %d, %d bytes",
				c.name, c.m, len(l.Dispatches), d.Grid, split, rows, bulk, d.SharedBytes, c.grid, c.split, c.rows, c.stages, shared)
		}
		if d.SharedBytes > RingMaxSharedBytes/2 {
			t.Errorf("%s M=%d: %d shared bytes leave no room for a second block", c.name, c.m, d.SharedBytes)
		}
	}
	// Larger stages (two tiles, four warps a tile) where a block has the
	// tiles for them; two blocks a multiprocessor, whose shared memory
	// holds one such stage each.
	big := caps
	big.GEMVBulk = GEMVBulk{Stages: 2, StageBytes: 64 << 10, Blocks: 2}
	if p, ok := bulkGEMVPlan(big, graph.BFloat16, 1, 151936, 1024, false, true); !ok || p.grid != 264 || p.split != 4 || p.stages != 1 {
		t.Errorf("lm_head, 2 stages of 64 KB, 2 blocks: %+v, %v; want grid 264, split 4, 1 stage", p, ok)
	}
	for _, c := range []struct {
		name string
		caps Caps
		dt   graph.DType
		m, k int
	}{
		{"off", Caps{Cores: 132, TensorCores: true}, graph.BFloat16, 1, 1024},
		{"float32", caps, graph.Float32, 1, 1024},
		{"9 rows", caps, graph.BFloat16, 9, 1024},
		{"K % 8", caps, graph.BFloat16, 1, 1001},
		{"no tensor cores", Caps{Cores: 132, GEMVBulk: on}, graph.BFloat16, 1, 1024},
		{"a tile past the shared memory", caps, graph.BFloat16, 1, 1 << 16},
	} {
		if p, ok := bulkGEMVPlan(c.caps, c.dt, c.m, 4096, c.k, false, true); ok {
			t.Errorf("%s: plan %+v, want none", c.name, p)
		}
	}
}
