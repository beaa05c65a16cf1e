package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/runtime"
)

// shapes are the model shapes that benchmarks build with seeded random
// weights, so that they need no download.
var shapes = map[string]model.Config{"qwen3-0.6b": model.Qwen3_0_6B}

// shapeConfig returns the configuration of the shape named name.
func shapeConfig(name string) (model.Config, error) {
	cfg, ok := shapes[name]
	if !ok {
		return model.Config{}, fmt.Errorf("model shape %q is unsupported (have %v)", name, slices.Sorted(maps.Keys(shapes)))
	}
	return cfg, nil
}

// randomModel uploads to rt a model of cfg with seeded random weights in
// dt, quantized to bits (4 or 8) in groups of groupSize when bits is not
// 0. The same arguments give the same weights.
func randomModel(rt *runtime.Runtime, cfg model.Config, dt graph.DType, bits, groupSize int) (*model.Model, error) {
	w := model.RandomWeights(cfg, dt, 1)
	if bits != 0 {
		var err error
		if w, err = model.QuantizeWeights(w, bits, groupSize); err != nil {
			return nil, err
		}
	}
	return model.New(rt, cfg, w, dt)
}
