package model

import (
	"fmt"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/runtime"
)

// Model is a Qwen3- or Llama-family model whose weights live on a runtime's device. It
// computes in the dtype of its weights: float32 weights give float32
// activations; bfloat16 or float16 weights give activations stored in that
// dtype with float32 arithmetic inside the kernels. The KV cache has the
// activation dtype.
type Model struct {
	Config  Config
	DType   graph.DType
	Weights *Weights
	rt      *runtime.Runtime
}

// Load reads a Hugging Face Qwen3 or Llama directory (config.json, the optional
// generation_config.json, and the safetensors files its
// model.safetensors.index.json names, or every *.safetensors file when it
// has none) and uploads the weights to rt. dt is the dtype to compute in; Invalid
// means the dtype the embedding is stored in. Weights stored in another
// float dtype are converted on the host.
func Load(rt *runtime.Runtime, dir string, dt graph.DType) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if dt != graph.Invalid && !dt.IsFloat() {
		return nil, fmt.Errorf("model %s: dtype %s is not a float dtype", dir, dt)
	}
	w, dt, ck, err := loadWeights(dir, cfg, dt)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	// The arrays hold slices of the mapped files until uploaded: upload now
	// and unmap.
	defer ck.close()
	return New(rt, cfg, w, dt)
}

// New returns a model of the given weights and uploads them to rt.
func New(rt *runtime.Runtime, cfg Config, w *Weights, dt graph.DType) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(w.Layers) != cfg.NumLayers {
		return nil, fmt.Errorf("model: %d layers of weights, the config has %d", len(w.Layers), cfg.NumLayers)
	}
	for _, a := range w.Arrays() {
		if _, packed := w.Quant[a]; !packed && a.DType() != dt {
			return nil, fmt.Errorf("model: weight %v is not %s", a, dt)
		}
	}
	if err := rt.Eval(w.Arrays()...); err != nil {
		return nil, fmt.Errorf("model: uploading weights: %w", err)
	}
	return &Model{Config: cfg, DType: dt, Weights: w, rt: rt}, nil
}

// Runtime is the runtime the model's weights live on.
func (m *Model) Runtime() *runtime.Runtime { return m.rt }

// WeightBytes is the size of the weights, each array counted once.
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, a := range m.Weights.Arrays() {
		n += a.Spec().Bytes()
	}
	return n
}

// CacheConfig returns the configuration of a KV cache for this model.
func (m *Model) CacheConfig(numBlocks, blockSize int) CacheConfig {
	return CacheConfig{NumBlocks: numBlocks, BlockSize: blockSize, Layers: m.Config.NumLayers,
		KVHeads: m.Config.NumKVHeads, HeadDim: m.Config.HeadDim, DType: m.DType}
}
