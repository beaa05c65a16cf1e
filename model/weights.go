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

// Weights are a model's parameters as graph arrays, in the layout of
// Hugging Face checkpoints (a linear layer's weight is [out, in]) except
// that the linear layers that read the same input are stacked into one
// (see Layer), so that each is one matmul.
//
// Where the checkpoint is quantized (docs/QUANT.md), a linear layer's or
// the embedding's array holds the packed codes (uint32 [out,
// in·bits/32]) and Quant maps it to its scales, biases and format; the
// stacked layers stack the packed rows, scales and biases of their parts,
// which must share one format (groups run along the input dimension, so
// stacking rows is exact).
type Weights struct {
	Embed  *graph.Array // [vocab, hidden]
	Norm   *graph.Array // [hidden], the final RMSNorm
	LMHead *graph.Array // [vocab, hidden]; the embedding when tied
	Layers []Layer
	Quant  map[*graph.Array]Quant // the quantized arrays' scales and biases; nil if none is
}

// Quant is the rest of a quantized matrix whose packed codes are a key of
// Weights.Quant: its scales and biases ([out, in/GroupSize], the model's
// dtype) and its format.
type Quant struct {
	Scales, Biases  *graph.Array
	GroupSize, Bits int
}

// Layer is one transformer block's parameters. QKV stacks the checkpoint's
// q_proj, k_proj and v_proj weights (rows [0, heads·head_dim), then
// kv_heads·head_dim rows each), and GateUp its gate_proj and up_proj
// weights (intermediate rows each).
type Layer struct {
	InputNorm    *graph.Array // [hidden]
	PostAttnNorm *graph.Array // [hidden]
	QNorm, KNorm *graph.Array // [head_dim], RMSNorm of each head of q and k; nil for Llama
	QKV          *graph.Array // [(heads + 2·kv_heads)·head_dim, hidden]
	O            *graph.Array // [hidden, heads·head_dim]
	QKVBias      *graph.Array // [(heads + 2·kv_heads)·head_dim], q, k and v's biases; nil without attention_bias
	OBias        *graph.Array // [hidden]; nil without attention_bias
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
		for _, a := range []*graph.Array{l.InputNorm, l.PostAttnNorm, l.QNorm, l.KNorm, l.QKV, l.O, l.QKVBias, l.OBias, l.GateUp, l.Down} {
			if a != nil {
				out = append(out, a)
			}
		}
	}
	for _, a := range out {
		if q, ok := w.Quant[a]; ok {
			out = append(out, q.Scales, q.Biases)
		}
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
	quant *Quantization // the config's, nil if it has none
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
		// Every shard is opened before any error is returned, so that all
		// the missing or corrupt ones are named.
		files := map[string]*Safetensors{}
		var errs []error
		for _, file := range slices.Sorted(maps.Values(weightMap)) {
			if _, done := files[file]; done {
				continue
			}
			f, err := OpenSafetensors(filepath.Join(dir, file))
			if err != nil {
				errs = append(errs, fmt.Errorf("shard %s named by %s: %w", file, filepath.Join(dir, IndexFile), err))
			} else {
				c.files = append(c.files, f)
			}
			files[file] = f
		}
		if len(errs) > 0 {
			c.close()
			return nil, errors.Join(errs...)
		}
		for _, name := range slices.Sorted(maps.Keys(weightMap)) {
			f := files[weightMap[name]]
			if _, ok := f.Info(name); !ok {
				c.close()
				return nil, fmt.Errorf("%s maps tensor %s to %s, which does not hold it", filepath.Join(dir, IndexFile), name, f.Path)
			}
			c.index[name] = f
		}
		return c, nil
	}
	paths, err := CheckpointFiles(dir)
	if err != nil {
		return nil, err
	}
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

// CheckpointFiles returns the paths of dir's safetensors files, sorted:
// those its index names when it has one, else every *.safetensors file.
func CheckpointFiles(dir string) ([]string, error) {
	weightMap, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	if weightMap != nil {
		for _, f := range weightMap {
			paths = append(paths, filepath.Join(dir, f))
		}
	} else if paths, err = filepath.Glob(filepath.Join(dir, "*.safetensors")); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no *.safetensors file in %s", dir)
	}
	slices.Sort(paths)
	return slices.Compact(paths), nil
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
	f, info, stored, err := c.lookup(tensorSpec{name, shape, dt == graph.Uint32})
	if err != nil {
		return nil, err
	}
	b := f.Bytes(info)
	if stored != dt {
		b = convertFloats(stored, dt, b)
	}
	return b, nil
}

// lookup finds the named tensor, marks it used, and checks its shape and
// that its dtype is one Loom loads: uint32 for packed codes, else a float
// dtype.
func (c *checkpoint) lookup(s tensorSpec) (*Safetensors, TensorInfo, graph.DType, error) {
	name, shape := s.name, s.shape
	f, ok := c.index[name]
	if !ok {
		return nil, TensorInfo{}, 0, fmt.Errorf("tensor %s is missing from %s", name, c.dir)
	}
	c.used[name] = true
	info, _ := f.Info(name)
	if !slices.Equal(info.Shape, shape) {
		return nil, TensorInfo{}, 0, fmt.Errorf("tensor %s in %s has shape %v, the config needs %v", name, f.Path, info.Shape, shape)
	}
	stored, err := DType(info.DType)
	if err != nil {
		return nil, TensorInfo{}, 0, fmt.Errorf("tensor %s in %s: %v", name, f.Path, err)
	}
	if s.packed != (stored == graph.Uint32) {
		want := "a float dtype (F32, F16, BF16)"
		if s.packed {
			want = "U32 (packed quantized codes)"
		}
		return nil, TensorInfo{}, 0, fmt.Errorf("tensor %s in %s is %s, want %s", name, f.Path, info.DType, want)
	}
	return f, info, stored, nil
}

// quantFormat is a quantized module's group size and bits.
type quantFormat struct{ groupSize, bits int }

// linearSpecs returns the tensors that hold weight s, [out, in] as floats:
// s itself, or where the checkpoint holds the module's scales (the weight
// is quantized; see Quantization), its packed codes, scales and biases,
// with their format. Weights of other ranks (the norms) are s.
func (c *checkpoint) linearSpecs(s tensorSpec) ([]tensorSpec, *quantFormat, error) {
	module, ok := strings.CutSuffix(s.name, ".weight")
	if _, quantized := c.index[module+".scales"]; !ok || len(s.shape) != 2 || !quantized {
		return []tensorSpec{s}, nil, nil
	}
	if c.quant == nil {
		return nil, nil, fmt.Errorf("tensor %s.scales is in %s but config.json has no \"quantization\"", module, c.dir)
	}
	gs, bits, on := c.quant.Module(module)
	if !on {
		return nil, nil, fmt.Errorf("config.json's quantization says %s is not quantized, but %s holds %s.scales", module, c.dir, module)
	}
	out, in := s.shape[0], s.shape[1]
	if in%gs != 0 {
		return nil, nil, fmt.Errorf("%s: %d inputs are not a multiple of its group size %d", module, in, gs)
	}
	groups := []int{out, in / gs}
	return []tensorSpec{{s.name, []int{out, in * bits / 32}, true}, {module + ".scales", groups, false}, {module + ".biases", groups, false}},
		&quantFormat{gs, bits}, nil
}

// linear returns weight s as the model's arrays: a constant of dtype dt,
// or where it is quantized, its packed codes and their Quant.
func (c *checkpoint) linear(s tensorSpec, dt graph.DType) (*graph.Array, *Quant, error) {
	return c.stackedLinear(dt, []tensorSpec{s})
}

// stackedLinear returns the given weights stacked in order (see stacked),
// each [out_i, in]: all float, or all quantized in one format, whose
// packed codes, scales and biases are stacked alike.
func (c *checkpoint) stackedLinear(dt graph.DType, parts []tensorSpec) (*graph.Array, *Quant, error) {
	var sets [3][]tensorSpec
	var format *quantFormat
	for i, p := range parts {
		specs, f, err := c.linearSpecs(p)
		if err != nil {
			return nil, nil, err
		}
		if i > 0 && (f == nil) != (format == nil) || f != nil && format != nil && *f != *format {
			return nil, nil, fmt.Errorf("%s and %s are quantized differently (or one is not): unsupported, as Loom stacks them into one matmul", parts[0].name, p.name)
		}
		format = f
		for j, s := range specs {
			sets[j] = append(sets[j], s)
		}
	}
	if format == nil {
		a, err := c.stacked(dt, sets[0])
		return a, nil, err
	}
	w, err := c.stacked(graph.Uint32, sets[0])
	if err != nil {
		return nil, nil, err
	}
	q := &Quant{GroupSize: format.groupSize, Bits: format.bits}
	if q.Scales, err = c.stacked(dt, sets[1]); err != nil {
		return nil, nil, err
	}
	if q.Biases, err = c.stacked(dt, sets[2]); err != nil {
		return nil, nil, err
	}
	return w, q, nil
}

// stacked returns the given matrices, stacked in order, as one constant of
// dtype dt: a copy on the host, from which the device gets its only copy
// (one matrix is the file's own bytes, where it stores dt).
func (c *checkpoint) stacked(dt graph.DType, parts []tensorSpec) (*graph.Array, error) {
	if len(parts) == 1 {
		return c.tensor(parts[0].name, dt, parts[0].shape...)
	}
	rows, cols := 0, parts[0].shape[1]
	for _, p := range parts {
		rows += p.shape[0]
	}
	out := make([]byte, 0, rows*cols*dt.Size())
	for _, p := range parts {
		b, err := c.tensorBytes(p.name, dt, p.shape...)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	a := graph.FromBytes(dt, out, rows, cols)
	return a, a.Err()
}

// stackedVector returns the given vectors, joined in order, as one
// constant of dtype dt.
func (c *checkpoint) stackedVector(dt graph.DType, parts []tensorSpec) (*graph.Array, error) {
	var out []byte
	for _, p := range parts {
		b, err := c.tensorBytes(p.name, dt, p.shape...)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	a := graph.FromBytes(dt, out, len(out)/dt.Size())
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

// unused returns an error naming the tensors in the files that were not
// loaded, or nil.
func (c *checkpoint) unused(family Family) error {
	var extra []string
	for name := range c.index {
		if !c.used[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	return fmt.Errorf("%s holds %d tensors a %s model of this config does not have (unsupported), such as %s",
		c.dir, len(extra), family, strings.Join(extra[:min(3, len(extra))], ", "))
}

// tensorSpec is a tensor a checkpoint must hold.
type tensorSpec struct {
	name   string
	shape  []int
	packed bool // uint32 codes of quantized weights, rather than floats
}

// layerPrefix is the name prefix of layer i's tensors.
func layerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// specs returns the tensors of a checkpoint of cfg: the ones loaded as
// they are (in the order of layerDsts), then each layer's q, k, v and gate,
// up projections, and q, k, v biases (in the order stacked into QKV,
// GateUp and QKVBias; qkvBias nil without attention_bias).
func specs(cfg Config) (single []tensorSpec, qkv, gateUp, qkvBias [][]tensorSpec) {
	h, q, kv, d, inter := cfg.HiddenSize, cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim, cfg.HeadDim, cfg.IntermediateSize
	single = []tensorSpec{
		{"model.embed_tokens.weight", []int{cfg.VocabSize, h}, false},
		{"model.norm.weight", []int{h}, false},
	}
	if !cfg.TieWordEmbeddings {
		single = append(single, tensorSpec{"lm_head.weight", []int{cfg.VocabSize, h}, false})
	}
	for i := range cfg.NumLayers {
		p := layerPrefix(i)
		single = append(single,
			tensorSpec{p + "input_layernorm.weight", []int{h}, false},
			tensorSpec{p + "post_attention_layernorm.weight", []int{h}, false},
			tensorSpec{p + "self_attn.o_proj.weight", []int{h, q}, false},
			tensorSpec{p + "mlp.down_proj.weight", []int{h, inter}, false},
		)
		if cfg.Family == Qwen3 {
			single = append(single, tensorSpec{p + "self_attn.q_norm.weight", []int{d}, false}, tensorSpec{p + "self_attn.k_norm.weight", []int{d}, false})
		}
		if cfg.AttentionBias {
			single = append(single, tensorSpec{p + "self_attn.o_proj.bias", []int{h}, false})
			qkvBias = append(qkvBias, []tensorSpec{
				{p + "self_attn.q_proj.bias", []int{q}, false},
				{p + "self_attn.k_proj.bias", []int{kv}, false},
				{p + "self_attn.v_proj.bias", []int{kv}, false},
			})
		}
		qkv = append(qkv, []tensorSpec{
			{p + "self_attn.q_proj.weight", []int{q, h}, false},
			{p + "self_attn.k_proj.weight", []int{kv, h}, false},
			{p + "self_attn.v_proj.weight", []int{kv, h}, false},
		})
		gateUp = append(gateUp, []tensorSpec{
			{p + "mlp.gate_proj.weight", []int{inter, h}, false},
			{p + "mlp.up_proj.weight", []int{inter, h}, false},
		})
	}
	return single, qkv, gateUp, qkvBias
}

// layerDsts returns where layer l's tensors of specs' single list go, in
// its order.
func layerDsts(cfg Config, l *Layer) []**graph.Array {
	dsts := []**graph.Array{&l.InputNorm, &l.PostAttnNorm, &l.O, &l.Down}
	if cfg.Family == Qwen3 {
		dsts = append(dsts, &l.QNorm, &l.KNorm)
	}
	if cfg.AttentionBias {
		dsts = append(dsts, &l.OBias)
	}
	return dsts
}

// CheckWeights checks dir's checkpoint against cfg without reading the
// weights: that the files open and every tensor is present, of the shape
// the config needs and of a dtype Loom loads, and that there are no
// others. It returns every problem found; nil means the checkpoint loads.
func CheckWeights(dir string, cfg Config) []error {
	c, err := openCheckpoint(dir)
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	defer c.close()
	c.quant = cfg.Quantization
	single, qkv, gateUp, qkvBias := specs(cfg)
	all := single
	for i := range qkv {
		all = append(append(all, qkv[i]...), gateUp[i]...)
		if qkvBias != nil {
			all = append(all, qkvBias[i]...)
		}
	}
	var problems []error
	for _, s := range all {
		specs, _, err := c.linearSpecs(s)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, s := range specs {
			if _, _, _, err := c.lookup(s); err != nil {
				problems = append(problems, err)
			}
		}
	}
	if cfg.TieWordEmbeddings {
		c.used["lm_head.weight"] = true // a tied checkpoint may store the copy
	}
	if err := c.unused(cfg.Family); err != nil {
		problems = append(problems, err)
	}
	return problems
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
	c.quant = cfg.Quantization
	single, qkv, gateUp, qkvBias := specs(cfg)
	if dt == graph.Invalid {
		embed, _, err := c.linearSpecs(single[0])
		if err != nil {
			return fail(err)
		}
		if _, _, dt, err = c.lookup(embed[min(1, len(embed)-1)]); err != nil { // the floats: the weight, or the scales
			return fail(err)
		}
	}
	w := &Weights{Layers: make([]Layer, cfg.NumLayers)}
	quant := func(a *graph.Array, q *Quant) {
		if q != nil {
			if w.Quant == nil {
				w.Quant = map[*graph.Array]Quant{}
			}
			w.Quant[a] = *q
		}
	}
	dsts := []**graph.Array{&w.Embed, &w.Norm}
	if !cfg.TieWordEmbeddings {
		dsts = append(dsts, &w.LMHead)
	}
	for i := range w.Layers {
		dsts = append(dsts, layerDsts(cfg, &w.Layers[i])...)
	}
	for i, s := range single {
		var q *Quant
		if *dsts[i], q, err = c.linear(s, dt); err != nil {
			return fail(err)
		}
		quant(*dsts[i], q)
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		var q *Quant
		if l.QKV, q, err = c.stackedLinear(dt, qkv[i]); err != nil {
			return fail(err)
		}
		quant(l.QKV, q)
		if l.GateUp, q, err = c.stackedLinear(dt, gateUp[i]); err != nil {
			return fail(err)
		}
		quant(l.GateUp, q)
		if qkvBias != nil {
			if l.QKVBias, err = c.stackedVector(dt, qkvBias[i]); err != nil {
				return fail(err)
			}
		}
	}
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
		c.used["lm_head.weight"] = true // a tied checkpoint may store the copy; the embedding is used
	}
	if err := c.unused(cfg.Family); err != nil {
		return fail(err)
	}
	return w, dt, c, nil
}
