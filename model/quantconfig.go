package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Quantization is a quantized checkpoint's format, config.json's
// "quantization" object as mlx-lm writes it (docs/QUANT.md): the default
// group size and bits, and per-module overrides keyed by module path (the
// tensor name without ".weight", such as "model.layers.0.mlp.down_proj").
// A module is quantized where the checkpoint holds "<module>.scales",
// unless its override says false.
type Quantization struct {
	GroupSize, Bits int
	Modules         map[string]QuantModule
}

// QuantModule is one module's override: not quantized, or quantized with
// its own group size and bits.
type QuantModule struct {
	Quantized       bool
	GroupSize, Bits int
}

// Module returns the format of the named module (its override, else the
// defaults), and false where an override says it is not quantized.
func (q *Quantization) Module(path string) (groupSize, bits int, quantized bool) {
	if m, ok := q.Modules[path]; ok {
		return m.GroupSize, m.Bits, m.Quantized
	}
	return q.GroupSize, q.Bits, true
}

// quantJSON is the object of the defaults, and of an override.
type quantJSON struct {
	GroupSize *int    `json:"group_size"`
	Bits      *int    `json:"bits"`
	Mode      *string `json:"mode"`
}

// check checks the format, with def's values for the fields it omits (nil
// for the defaults themselves, which must have both).
func (f quantJSON) check(what string, def *Quantization) (groupSize, bits int, err error) {
	if f.Mode != nil && *f.Mode != "affine" {
		return 0, 0, fmt.Errorf("%s: mode %q is unsupported (Loom loads MLX's affine quantization)", what, *f.Mode)
	}
	if def != nil {
		groupSize, bits = def.GroupSize, def.Bits
	} else if f.GroupSize == nil || f.Bits == nil {
		return 0, 0, fmt.Errorf("%s: group_size and bits are both required", what)
	}
	if f.GroupSize != nil {
		groupSize = *f.GroupSize
	}
	if f.Bits != nil {
		bits = *f.Bits
	}
	if err := checkQuantFormat(bits, groupSize); err != nil {
		return 0, 0, fmt.Errorf("%s: %v", what, err)
	}
	return groupSize, bits, nil
}

// parseQuantization parses config.json's "quantization" object; absent or
// null is nil.
func parseQuantization(raw json.RawMessage) (*Quantization, error) {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 || bytes.Equal(s, []byte("null")) {
		return nil, nil
	}
	var def quantJSON
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(s, &fields); err != nil {
		return nil, fmt.Errorf("quantization: %s is not an object", s)
	}
	if err := json.Unmarshal(s, &def); err != nil {
		return nil, fmt.Errorf("quantization: %v", err)
	}
	q := &Quantization{}
	var err error
	if q.GroupSize, q.Bits, err = def.check("quantization", nil); err != nil {
		return nil, err
	}
	for _, path := range slices.Sorted(maps.Keys(fields)) {
		v := fields[path]
		if path == "group_size" || path == "bits" || path == "mode" {
			continue
		}
		if q.Modules == nil {
			q.Modules = map[string]QuantModule{}
		}
		var on bool
		if err := json.Unmarshal(v, &on); err == nil {
			q.Modules[path] = QuantModule{Quantized: on, GroupSize: q.GroupSize, Bits: q.Bits}
			continue
		}
		var f quantJSON
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, fmt.Errorf("quantization.%s: %s is neither a boolean nor an object of group_size and bits", path, v)
		}
		m := QuantModule{Quantized: true}
		if m.GroupSize, m.Bits, err = f.check("quantization."+path, q); err != nil {
			return nil, err
		}
		q.Modules[path] = m
	}
	return q, nil
}
