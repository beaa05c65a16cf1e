package model

import (
	"math"
	"math/rand/v2"
	goruntime "runtime"

	"github.com/loomrt/loom/graph"

	"golang.org/x/sync/errgroup"
)

// RandomWeights returns weights of the given configuration with seeded
// random values, for benchmarks and tests that need no checkpoint. Scales
// keep activations of a deep stack in a sane range: linear weights are
// uniform with variance 1/in, norms near 1, embeddings in [−1, 1).
func RandomWeights(cfg Config, dt graph.DType, seed uint64) *Weights {
	h, q, kv, d, inter := cfg.HiddenSize, cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim, cfg.HeadDim, cfg.IntermediateSize
	w := &Weights{Layers: make([]Layer, cfg.NumLayers)}
	type spec struct {
		dst    **graph.Array
		lo, hi float32
		shape  []int
	}
	lin := func(dst **graph.Array, out, in int) spec {
		s := float32(math.Sqrt(3 / float64(in)))
		return spec{dst, -s, s, []int{out, in}}
	}
	norm := func(dst **graph.Array, n int) spec { return spec{dst, 0.8, 1.2, []int{n}} }
	specs := []spec{{&w.Embed, -1, 1, []int{cfg.VocabSize, h}}, norm(&w.Norm, h)}
	if !cfg.TieWordEmbeddings {
		specs = append(specs, lin(&w.LMHead, cfg.VocabSize, h))
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		specs = append(specs, norm(&l.InputNorm, h), norm(&l.PostAttnNorm, h))
		if cfg.Family == Qwen3 {
			specs = append(specs, norm(&l.QNorm, d), norm(&l.KNorm, d))
		}
		specs = append(specs, lin(&l.QKV, q+2*kv, h), lin(&l.O, h, q), lin(&l.GateUp, 2*inter, h), lin(&l.Down, h, inter))
		if cfg.AttentionBias {
			specs = append(specs, spec{&l.QKVBias, -0.5, 0.5, []int{q + 2*kv}}, spec{&l.OBias, -0.5, 0.5, []int{h}})
		}
	}
	// Each tensor has its own stream, so the values do not depend on the
	// order the workers fill them in.
	var g errgroup.Group
	g.SetLimit(goruntime.GOMAXPROCS(0))
	for i, s := range specs {
		b := make([]byte, graph.NumElements(s.shape)*dt.Size())
		*s.dst = graph.FromBytes(dt, b, s.shape...)
		g.Go(func() error {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			vals := make([]float32, 4096)
			for off := 0; off < len(b); off += len(vals) * dt.Size() {
				n := min(len(vals), (len(b)-off)/dt.Size())
				for j := range vals[:n] {
					vals[j] = s.lo + (s.hi-s.lo)*r.Float32()
				}
				graph.PutFloat32s(dt, b[off:], vals[:n])
			}
			return nil
		})
	}
	g.Wait() // the fills cannot fail
	if cfg.TieWordEmbeddings {
		w.LMHead = w.Embed
	}
	return w
}
