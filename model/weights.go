package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/loomrt/loom/graph"
)

// Weights are a Qwen3 model's parameters as graph arrays, in the layout of
// Hugging Face checkpoints (a linear layer's weight is [out, in]) except
// that the linear layers that read the same input are stacked into one
// (see Layer), so that each is one matmul.
type Weights struct {
	Embed  *graph.Array // [vocab, hidden]
	Norm   *graph.Array // [hidden], the final RMSNorm
	LMHead *graph.Array // [vocab, hidden]; the embedding when tied
	Layers []Layer
}

// Layer is one transformer block's parameters. QKV stacks the checkpoint's
// q_proj, k_proj and v_proj weights (rows [0, heads·head_dim), then
// kv_heads·head_dim rows each), and GateUp its gate_proj and up_proj
// weights (intermediate rows each).
type Layer struct {
	InputNorm    *graph.Array // [hidden]
	PostAttnNorm *graph.Array // [hidden]
	QNorm, KNorm *graph.Array // [head_dim], RMSNorm of each head of q and k
	QKV          *graph.Array // [(heads + 2·kv_heads)·head_dim, hidden]
	O            *graph.Array // [hidden, heads·head_dim]
	GateUp       *graph.Array // [2·intermediate, hidden]
	Down         *graph.Array // [hidden, intermediate]
}

// Arrays lists every distinct weight array.
func (w *Weights) Arrays() []*graph.Array {
	out := []*graph.Array{w.Embed, w.Norm}
	if w.LMHead != w.Embed {
		out = append(out, w.LMHead)
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		out = append(out, l.InputNorm, l.PostAttnNorm, l.QNorm, l.KNorm, l.QKV, l.O, l.GateUp, l.Down)
	}
	return out
}

// checkpoint is the safetensors files of a model directory, indexed by
// tensor name.
type checkpoint struct {
	dir   string
	files []*Safetensors
	index map[string]*Safetensors
	used  map[string]bool
}

// IndexFile names a sharded checkpoint's index, which maps every tensor
// name to the safetensors file holding it.
const IndexFile = "model.safetensors.index.json"

// openCheckpoint opens the files of dir's index when it has one (other
// safetensors files, such as a stale single file beside the shards, are
// ignored), else every *.safetensors file in dir.
func openCheckpoint(dir string) (*checkpoint, error) {
	weightMap, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	c := &checkpoint{dir: dir, index: map[string]*Safetensors{}, used: map[string]bool{}}
	if weightMap != nil {
		files := map[string]*Safetensors{}
		for _, name := range slices.Sorted(maps.Keys(weightMap)) {
			file := weightMap[name]
			f, ok := files[file]
			if !ok {
				if f, err = OpenSafetensors(filepath.Join(dir, file)); err != nil {
					c.close()
					return nil, fmt.Errorf("shard %s named by %s: %w", file, filepath.Join(dir, IndexFile), err)
				}
				files[file] = f
				c.files = append(c.files, f)
			}
			if _, ok := f.Info(name); !ok {
				c.close()
				return nil, fmt.Errorf("%s maps tensor %s to %s, which does not hold it", filepath.Join(dir, IndexFile), name, f.Path)
			}
			c.index[name] = f
		}
		return c, nil
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no *.safetensors file in %s", dir)
	}
	slices.Sort(paths)
	for _, p := range paths {
		f, err := OpenSafetensors(p)
		if err != nil {
			c.close()
			return nil, err
		}
		c.files = append(c.files, f)
		for _, name := range f.Names() {
			if prev, dup := c.index[name]; dup {
				c.close()
				return nil, fmt.Errorf("tensor %q is in both %s and %s", name, prev.Path, p)
			}
			c.index[name] = f
		}
	}
	return c, nil
}

// readIndex returns the weight_map of dir's index, or nil when dir has no
// index.
func readIndex(dir string) (map[string]string, error) {
	path := filepath.Join(dir, IndexFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: no weight_map (or an empty one)", path)
	}
	for name, file := range idx.WeightMap {
		if !filepath.IsLocal(file) || filepath.Base(file) != file {
			return nil, fmt.Errorf("%s: tensor %s is in %q, which is not a file in the model directory", path, name, file)
		}
	}
	return idx.WeightMap, nil
}

func (c *checkpoint) close() {
	for _, f := range c.files {
		f.Close()
	}
}

// tensor returns the named tensor as a constant of dtype dt, checking its
// shape. When the stored dtype is dt the array's bytes are the file's own
// (mapped) bytes, with no copy; otherwise they are converted.
func (c *checkpoint) tensor(name string, dt graph.DType, shape ...int) (*graph.Array, error) {
	b, err := c.tensorBytes(name, dt, shape...)
	if err != nil {
		return nil, err
	}
	a := graph.FromBytes(dt, b, shape...)
	return a, a.Err()
}

// tensorBytes returns the named tensor's bytes as dtype dt, checking its
// shape: the file's own bytes when it stores dt, converted otherwise.
func (c *checkpoint) tensorBytes(name string, dt graph.DType, shape ...int) ([]byte, error) {
	f, ok := c.index[name]
	if !ok {
		return nil, fmt.Errorf("tensor %s is missing from %s", name, c.dir)
	}
	c.used[name] = true
	info, _ := f.Info(name)
	if !slices.Equal(info.Shape, shape) {
		return nil, fmt.Errorf("tensor %s in %s has shape %v, the config needs %v", name, f.Path, info.Shape, shape)
	}
	stored, err := DType(info.DType)
	if err != nil {
		return nil, fmt.Errorf("tensor %s in %s: %v", name, f.Path, err)
	}
	b := f.Bytes(info)
	if stored != dt {
		b = convertFloats(stored, dt, b)
	}
	return b, nil
}

// stacked returns the named matrices of cols columns and the given numbers
// of rows, stacked in order, as one constant of dtype dt: a copy on the
// host, from which the device gets its only copy.
func (c *checkpoint) stacked(dt graph.DType, cols int, names []string, rows []int) (*graph.Array, error) {
	total := 0
	for _, r := range rows {
		total += r
	}
	out := make([]byte, 0, total*cols*dt.Size())
	for i, name := range names {
		b, err := c.tensorBytes(name, dt, rows[i], cols)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	a := graph.FromBytes(dt, out, total, cols)
	return a, a.Err()
}

// convertFloats converts float elements between float32, float16 and
// bfloat16, rounding to nearest even.
func convertFloats(from, to graph.DType, b []byte) []byte {
	const chunk = 1 << 16 // elements converted at a time, to bound the float64 temporary
	n := len(b) / from.Size()
	out := make([]byte, n*to.Size())
	vals := make([]float32, 0, chunk)
	for i := 0; i < n; i += chunk {
		end := min(n, i+chunk)
		vals = vals[:0]
		for _, v := range graph.DecodeFloat64s(from, b[i*from.Size():end*from.Size()]) {
			vals = append(vals, float32(v))
		}
		graph.PutFloat32s(to, out[i*to.Size():], vals)
	}
	return out
}

// unused returns the names of tensors in the files that were not loaded.
func (c *checkpoint) unused() []string {
	var out []string
	for name := range c.index {
		if !c.used[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// loadWeights reads a Qwen3 checkpoint. dt is the dtype to compute in; 0
// means the stored dtype of the embedding. The returned checkpoint must be
// closed once the weights are uploaded.
func loadWeights(dir string, cfg Config, dt graph.DType) (*Weights, graph.DType, *checkpoint, error) {
	c, err := openCheckpoint(dir)
	if err != nil {
		return nil, 0, nil, err
	}
	fail := func(err error) (*Weights, graph.DType, *checkpoint, error) {
		c.close()
		return nil, 0, nil, err
	}
	if dt == graph.Invalid {
		f, ok := c.index["model.embed_tokens.weight"]
		if !ok {
			return fail(fmt.Errorf("tensor model.embed_tokens.weight is missing from %s", dir))
		}
		info, _ := f.Info("model.embed_tokens.weight")
		if dt, err = DType(info.DType); err != nil {
			return fail(fmt.Errorf("tensor model.embed_tokens.weight in %s: %v", f.Path, err))
		}
	}
	h, q, kv, d, inter := cfg.HiddenSize, cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim, cfg.HeadDim, cfg.IntermediateSize
	w := &Weights{Layers: make([]Layer, cfg.NumLayers)}
	type want struct {
		dst   **graph.Array
		name  string
		shape []int
	}
	wants := []want{
		{&w.Embed, "model.embed_tokens.weight", []int{cfg.VocabSize, h}},
		{&w.Norm, "model.norm.weight", []int{h}},
	}
	if !cfg.TieWordEmbeddings {
		wants = append(wants, want{&w.LMHead, "lm_head.weight", []int{cfg.VocabSize, h}})
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		wants = append(wants,
			want{&l.InputNorm, p + "input_layernorm.weight", []int{h}},
			want{&l.PostAttnNorm, p + "post_attention_layernorm.weight", []int{h}},
			want{&l.QNorm, p + "self_attn.q_norm.weight", []int{d}},
			want{&l.KNorm, p + "self_attn.k_norm.weight", []int{d}},
			want{&l.O, p + "self_attn.o_proj.weight", []int{h, q}},
			want{&l.Down, p + "mlp.down_proj.weight", []int{h, inter}},
		)
	}
	for _, x := range wants {
		if *x.dst, err = c.tensor(x.name, dt, x.shape...); err != nil {
			return fail(err)
		}
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		names := []string{p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"}
		if l.QKV, err = c.stacked(dt, h, names, []int{q, kv, kv}); err != nil {
			return fail(err)
		}
		names = []string{p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}
		if l.GateUp, err = c.stacked(dt, h, names, []int{inter, inter}); err != nil {
			return fail(err)
		}
	}
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
		c.used["lm_head.weight"] = true // a tied checkpoint may store the copy; the embedding is used
	}
	if extra := c.unused(); len(extra) > 0 {
		return fail(fmt.Errorf("%s holds %d tensors a Qwen3 model of this config does not have (unsupported), such as %s",
			dir, len(extra), strings.Join(extra[:min(3, len(extra))], ", ")))
	}
	return w, dt, c, nil
}
