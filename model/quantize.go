package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"

	"golang.org/x/sync/errgroup"
)

// Quantized is a matrix [Rows, K] in MLX's affine format (docs/QUANT.md):
// each row's codes packed into Words (K·Bits/32 words a row, lowest bits
// first), and a scale and a bias per group of GroupSize elements of a row
// ([Rows, K/GroupSize], row-major), stored as DType.
type Quantized struct {
	Rows, K         int
	Bits, GroupSize int
	DType           graph.DType
	Words           []uint32
	Scales, Biases  []float32 // the stored values (already rounded to DType)
}

// Quantize converts a float matrix w [rows, k] (row-major) to the affine
// format, scales and biases stored as dt. Per group of groupSize: bias =
// min, scale = (max − min)/(2^bits − 1), both rounded to dt first, then
// q = round((w − bias)/scale) clamped to [0, 2^bits − 1] (0 where the
// scale is 0: a constant group is its bias exactly).
func Quantize(w []float32, rows, k int, dt graph.DType, bits, groupSize int) (*Quantized, error) {
	if err := checkQuantFormat(bits, groupSize); err != nil {
		return nil, fmt.Errorf("quantize: %v", err)
	}
	if !dt.IsFloat() {
		return nil, fmt.Errorf("quantize: scales dtype %s is not a float dtype", dt)
	}
	if rows < 0 || k <= 0 || k%groupSize != 0 || len(w) != rows*k {
		return nil, fmt.Errorf("quantize: a [%d, %d] matrix of %d values: rows must be a non-empty multiple of the group size %d", rows, k, len(w), groupSize)
	}
	groups, per := k/groupSize, 32/bits
	q := &Quantized{Rows: rows, K: k, Bits: bits, GroupSize: groupSize, DType: dt,
		Words: make([]uint32, rows*k/per), Scales: make([]float32, rows*groups), Biases: make([]float32, rows*groups)}
	top := float64(int(1)<<bits - 1)
	for g := range rows * groups {
		vals := w[g*groupSize : (g+1)*groupSize]
		lo, hi := slices.Min(vals), slices.Max(vals)
		if math.IsNaN(float64(lo)) || math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) || slices.ContainsFunc(vals, func(v float32) bool { return v != v }) {
			return nil, fmt.Errorf("quantize: row %d, group %d holds a NaN or an infinity", g/groups, g%groups)
		}
		bias := roundTo(dt, lo)
		scale := roundTo(dt, float32((float64(hi)-float64(lo))/top))
		q.Scales[g], q.Biases[g] = scale, bias
		for i, v := range vals {
			code := 0.0
			if scale != 0 {
				code = min(max(math.RoundToEven((float64(v)-float64(bias))/float64(scale)), 0), top)
			}
			e := g*groupSize + i
			q.Words[e/per] |= uint32(code) << (bits * (e % per))
		}
	}
	return q, nil
}

// checkQuantFormat checks that Loom's kernels take the format.
func checkQuantFormat(bits, groupSize int) error {
	if !slices.Contains(primitives.QuantBits, bits) || !slices.Contains(primitives.QuantGroupSizes, groupSize) {
		return fmt.Errorf("%d bits, group size %d: unsupported (4 or 8 bits; groups of 32, 64 or 128)", bits, groupSize)
	}
	return nil
}

// roundTo rounds v to dt's precision.
func roundTo(dt graph.DType, v float32) float32 {
	switch dt {
	case graph.BFloat16:
		return graph.BF16ToF32(graph.F32ToBF16(v))
	case graph.Float16:
		return graph.F16ToF32(graph.F32ToF16(v))
	}
	return v
}

// Dequantized returns the matrix the format stands for, scale·q + bias
// per element in float64: the reference the kernels are tested against.
func (q *Quantized) Dequantized() []float64 {
	out := make([]float64, q.Rows*q.K)
	per, mask := 32/q.Bits, uint32(1)<<q.Bits-1
	for e := range out {
		code := q.Words[e/per] >> (q.Bits * (e % per)) & mask
		g := e / q.GroupSize
		out[e] = float64(q.Scales[g])*float64(code) + float64(q.Biases[g])
	}
	return out
}

// Arrays returns the packed words [Rows, K·Bits/32] (uint32) and the
// scales and biases [Rows, K/GroupSize] (DType) as constants.
func (q *Quantized) Arrays() (w, scales, biases *graph.Array) {
	groups := q.K / q.GroupSize
	return graph.FromUint32s(q.Words, q.Rows, q.K*q.Bits/32),
		graph.FromFloat32sAs(q.DType, q.Scales, q.Rows, groups), graph.FromFloat32sAs(q.DType, q.Biases, q.Rows, groups)
}

// QuantizeCheckpoint writes to directory dst (created if missing) the
// float checkpoint of directory src with its linear layers and embeddings
// quantized to bits bits in groups of groupSize (see Quantize): every
// 2-D "<module>.weight" of the embedding, the LM head and the "*_proj"
// layers whose inputs are a multiple of the group size. Other tensors
// (the norms, and as mlx-lm does, layers whose inputs are not a multiple
// of the group size) are copied as they are. Scales and biases have each
// weight's stored dtype. dst gets one model.safetensors, src's config.json
// with "quantization" (and "quantization_config", as mlx-lm writes both)
// set to {"group_size", "bits", "mode": "affine"}, and src's other files
// but its safetensors files and their index.
func QuantizeCheckpoint(src, dst string, bits, groupSize int) error {
	cfg, err := LoadConfig(src)
	if err != nil {
		return err
	}
	if cfg.Quantization != nil {
		return fmt.Errorf("quantize: %s is already quantized", src)
	}
	if err := checkQuantFormat(bits, groupSize); err != nil {
		return fmt.Errorf("quantize: %v", err)
	}
	c, err := openCheckpoint(src)
	if err != nil {
		return err
	}
	defer c.close()
	var out []Tensor
	for _, name := range slices.Sorted(maps.Keys(c.index)) {
		f := c.index[name]
		info, _ := f.Info(name)
		b := f.Bytes(info)
		module, isWeight := strings.CutSuffix(name, ".weight")
		dt, dtErr := DType(info.DType)
		if !isWeight || len(info.Shape) != 2 || info.Shape[1]%groupSize != 0 || dtErr != nil || !dt.IsFloat() ||
			module != "model.embed_tokens" && module != "lm_head" && !strings.HasSuffix(module, "_proj") {
			out = append(out, Tensor{name, info.DType, info.Shape, b})
			continue
		}
		rows, k := info.Shape[0], info.Shape[1]
		vals := make([]float32, 0, rows*k)
		for _, v := range graph.DecodeFloat64s(dt, b) {
			vals = append(vals, float32(v))
		}
		q, err := Quantize(vals, rows, k, dt, bits, groupSize)
		if err != nil {
			return fmt.Errorf("quantize: %s: %v", name, err)
		}
		words := make([]byte, 4*len(q.Words))
		for i, w := range q.Words {
			binary.LittleEndian.PutUint32(words[4*i:], w)
		}
		groups := []int{rows, k / groupSize}
		sb, bb := make([]byte, len(q.Scales)*dt.Size()), make([]byte, len(q.Biases)*dt.Size())
		graph.PutFloat32s(dt, sb, q.Scales)
		graph.PutFloat32s(dt, bb, q.Biases)
		out = append(out, Tensor{name, "U32", []int{rows, k * bits / 32}, words},
			Tensor{module + ".scales", info.DType, groups, sb}, Tensor{module + ".biases", info.DType, groups, bb})
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := WriteSafetensors(filepath.Join(dst, "model.safetensors"), out); err != nil {
		return err
	}
	return copyQuantizedFiles(src, dst, bits, groupSize)
}

// copyQuantizedFiles writes src's config.json with the quantization
// objects to dst and copies src's other regular files but the
// safetensors files and their index.
func copyQuantizedFiles(src, dst string, bits, groupSize int) error {
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		return err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %v", filepath.Join(src, "config.json"), err)
	}
	format, _ := json.Marshal(map[string]any{"group_size": groupSize, "bits": bits, "mode": "affine"})
	cfg["quantization"], cfg["quantization_config"] = format, format
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, "config.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || name == "config.json" || name == IndexFile || strings.HasSuffix(name, ".safetensors") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// QuantizeWeights returns float weights w (not yet uploaded) with the
// embedding, the LM head and every layer's linear layers quantized like
// QuantizeCheckpoint does (those whose inputs are a multiple of
// groupSize; the others stay float): for benchmarks and tests of quantized
// models without a checkpoint. Stacking rows is exact (docs/QUANT.md), so
// quantizing the stacked QKV and gate/up matrices is quantizing their
// parts.
func QuantizeWeights(w *Weights, bits, groupSize int) (*Weights, error) {
	if err := checkQuantFormat(bits, groupSize); err != nil {
		return nil, fmt.Errorf("quantize: %v", err)
	}
	out := *w
	out.Layers = slices.Clone(w.Layers)
	out.Quant = map[*graph.Array]Quant{}
	dsts := []**graph.Array{&out.Embed, &out.LMHead}
	for i := range out.Layers {
		l := &out.Layers[i]
		dsts = append(dsts, &l.QKV, &l.O, &l.GateUp, &l.Down)
	}
	// Each distinct array (a tied LM head is the embedding) is quantized
	// on its own goroutine.
	type result struct {
		packed *graph.Array
		q      Quant
	}
	results := map[*graph.Array]*result{}
	var g errgroup.Group
	g.SetLimit(goruntime.GOMAXPROCS(0))
	for _, d := range dsts {
		from := *d
		if _, ok := results[from]; ok || from.Shape()[1]%groupSize != 0 {
			continue
		}
		r := &result{}
		results[from] = r
		g.Go(func() (err error) {
			r.packed, r.q, err = quantizeArray(from, bits, groupSize)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, d := range dsts {
		r, ok := results[*d]
		if !ok {
			continue // inputs no multiple of the group size: stays float
		}
		*d = r.packed
		out.Quant[r.packed] = r.q
	}
	return &out, nil
}

// quantizeArray quantizes a float matrix constant [rows, k] (see
// Quantize) and returns its packed codes and Quant.
func quantizeArray(a *graph.Array, bits, groupSize int) (*graph.Array, Quant, error) {
	rows, k, dt := a.Shape()[0], a.Shape()[1], a.DType()
	b, err := a.Bytes()
	if err != nil {
		return nil, Quant{}, err
	}
	all := &Quantized{Rows: rows, K: k, Bits: bits, GroupSize: groupSize, DType: dt}
	const chunk = 1024 // rows converted at a time, to bound the float32 temporary
	for r0 := 0; r0 < rows; r0 += chunk {
		n := min(chunk, rows-r0)
		vals := make([]float32, 0, n*k)
		for _, v := range graph.DecodeFloat64s(dt, b[r0*k*dt.Size():(r0+n)*k*dt.Size()]) {
			vals = append(vals, float32(v))
		}
		q, err := Quantize(vals, n, k, dt, bits, groupSize)
		if err != nil {
			return nil, Quant{}, err
		}
		all.Words = append(all.Words, q.Words...)
		all.Scales = append(all.Scales, q.Scales...)
		all.Biases = append(all.Biases, q.Biases...)
	}
	packed, scales, biases := all.Arrays()
	return packed, Quant{Scales: scales, Biases: biases, GroupSize: groupSize, Bits: bits}, nil
}
