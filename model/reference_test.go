package model

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/loomrt/loom/graph"
)

// refModel is a plain float64 Qwen3 or Llama forward pass, written for
// clarity: the reference the graph-built model is checked against.
type refModel struct {
	cfg     Config
	invFreq []float64   // RoPE's, scaled as the config says
	embed   [][]float64 // [vocab][hidden]
	norm    []float64
	lmHead  [][]float64
	layers  []refLayer
}

type refLayer struct {
	inNorm, postNorm, qNorm, kNorm []float64   // qNorm, kNorm nil for Llama
	q, k, v, o, gate, up, down     [][]float64 // [out][in]
	qb, kb, vb, ob                 []float64   // biases; nil without attention_bias
}

// newRefModel reads a Weights' constant arrays as float64.
func newRefModel(t testing.TB, cfg Config, w *Weights) *refModel {
	t.Helper()
	vec := func(a *graph.Array) []float64 {
		t.Helper()
		f, err := a.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	mat := func(a *graph.Array) [][]float64 {
		rows, cols := a.Shape()[0], a.Shape()[1]
		var f []float64
		if q, ok := w.Quant[a]; ok { // the same weights dequantised
			f, cols = dequantized(t, a, q), cols*32/q.Bits
		} else {
			f = vec(a)
		}
		m := make([][]float64, rows)
		for i := range m {
			m[i] = f[i*cols : (i+1)*cols]
		}
		return m
	}
	opt := func(a *graph.Array) []float64 {
		if a == nil {
			return nil
		}
		return vec(a)
	}
	r := &refModel{cfg: cfg, embed: mat(w.Embed), norm: vec(w.Norm), lmHead: mat(w.LMHead),
		invFreq: refInvFreq(float64(cfg.RopeTheta), cfg.HeadDim, cfg.RopeScaling)}
	q, kv := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	for _, l := range w.Layers {
		qkv, gateUp := mat(l.QKV), mat(l.GateUp)
		rl := refLayer{inNorm: vec(l.InputNorm), postNorm: vec(l.PostAttnNorm), qNorm: opt(l.QNorm), kNorm: opt(l.KNorm),
			q: qkv[:q], k: qkv[q : q+kv], v: qkv[q+kv:], o: mat(l.O), gate: gateUp[:cfg.IntermediateSize], up: gateUp[cfg.IntermediateSize:], down: mat(l.Down),
			ob: opt(l.OBias)}
		if b := opt(l.QKVBias); b != nil {
			rl.qb, rl.kb, rl.vb = b[:q], b[q:q+kv], b[q+kv:]
		}
		r.layers = append(r.layers, rl)
	}
	return r
}

// refInvFreq is RoPE's inverse frequencies written from transformers'
// _compute_default_rope_parameters and _compute_llama3_parameters: the
// reference for primitives.RoPEScaling.
func refInvFreq(theta float64, d int, s *RopeScaling) []float64 {
	out := make([]float64, d/2)
	for i := range out {
		inv := 1 / math.Pow(theta, float64(2*i)/float64(d))
		out[i] = inv
		if s == nil {
			continue
		}
		lowWavelen := s.OriginalMaxPositionEmbeddings / s.LowFreqFactor
		highWavelen := s.OriginalMaxPositionEmbeddings / s.HighFreqFactor
		wavelen := 2 * math.Pi / inv
		scaled := inv
		if wavelen > lowWavelen {
			scaled = inv / s.Factor
		}
		smooth := (s.OriginalMaxPositionEmbeddings/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
		smoothed := (1-smooth)*scaled/s.Factor + smooth*scaled
		if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
			scaled = smoothed
		}
		out[i] = scaled
	}
	return out
}

// refAddBias adds b to x when b is not nil.
func refAddBias(x, b []float64) []float64 {
	for i := range b {
		x[i] += b[i]
	}
	return x
}

// dequantized returns the float values of quantized weights: packed codes
// a with their scales, biases and format q.
func dequantized(t testing.TB, a *graph.Array, q Quant) []float64 {
	t.Helper()
	words, err := a.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	qm := &Quantized{Rows: a.Shape()[0], K: a.Shape()[1] * 32 / q.Bits, Bits: q.Bits, GroupSize: q.GroupSize}
	for i := 0; i < len(words); i += 4 {
		qm.Words = append(qm.Words, binary.LittleEndian.Uint32(words[i:]))
	}
	for _, dst := range []struct {
		from *graph.Array
		to   *[]float32
	}{{q.Scales, &qm.Scales}, {q.Biases, &qm.Biases}} {
		v, err := dst.from.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			*dst.to = append(*dst.to, float32(x))
		}
	}
	return qm.Dequantized()
}

func refRMSNorm(x, w []float64, eps float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * s * w[i]
	}
	return out
}

// refLinear is x·Wᵀ for W [out][in].
func refLinear(x []float64, w [][]float64) []float64 {
	out := make([]float64, len(w))
	for o, row := range w {
		s := 0.0
		for i, v := range row {
			s += v * x[i]
		}
		out[o] = s
	}
	return out
}

// refRoPE rotates each head of x (heads·d values) at position pos, pairing
// element i with element i+d/2 (the half-rotation form of Qwen3 and Llama).
func refRoPE(x []float64, d, pos int, invFreq []float64) {
	for h := 0; h < len(x)/d; h++ {
		v := x[h*d : (h+1)*d]
		for i := range d / 2 {
			ang := float64(pos) * invFreq[i]
			c, s := math.Cos(ang), math.Sin(ang)
			a, b := v[i], v[i+d/2]
			v[i], v[i+d/2] = a*c-b*s, b*c+a*s
		}
	}
}

// logits returns the logits at every position of ids, attending causally.
func (r *refModel) logits(ids []int32) [][]float64 {
	c := r.cfg
	eps := float64(c.RMSNormEps)
	d, hq, hkv := c.HeadDim, c.NumHeads, c.NumKVHeads
	xs := make([][]float64, len(ids))
	for t, id := range ids {
		xs[t] = append([]float64(nil), r.embed[id]...)
	}
	for _, l := range r.layers {
		qs, ks, vs := make([][]float64, len(ids)), make([][]float64, len(ids)), make([][]float64, len(ids))
		for t := range ids {
			h := refRMSNorm(xs[t], l.inNorm, eps)
			q, k := refAddBias(refLinear(h, l.q), l.qb), refAddBias(refLinear(h, l.k), l.kb)
			if l.qNorm != nil {
				for hh := range hq {
					copy(q[hh*d:], refRMSNorm(q[hh*d:(hh+1)*d], l.qNorm, eps))
				}
				for hh := range hkv {
					copy(k[hh*d:], refRMSNorm(k[hh*d:(hh+1)*d], l.kNorm, eps))
				}
			}
			refRoPE(q, d, t, r.invFreq)
			refRoPE(k, d, t, r.invFreq)
			qs[t], ks[t], vs[t] = q, k, refAddBias(refLinear(h, l.v), l.vb)
		}
		for t := range ids {
			att := make([]float64, hq*d)
			for hh := range hq {
				kh := hh / (hq / hkv)
				scores := make([]float64, t+1)
				m := math.Inf(-1)
				for j := 0; j <= t; j++ {
					s := 0.0
					for i := range d {
						s += qs[t][hh*d+i] * ks[j][kh*d+i]
					}
					scores[j] = s / math.Sqrt(float64(d))
					m = math.Max(m, scores[j])
				}
				z := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - m)
					z += scores[j]
				}
				for j := range scores {
					for i := range d {
						att[hh*d+i] += scores[j] / z * vs[j][kh*d+i]
					}
				}
			}
			o := refAddBias(refLinear(att, l.o), l.ob)
			for i := range o {
				xs[t][i] += o[i]
			}
			h := refRMSNorm(xs[t], l.postNorm, eps)
			g, u := refLinear(h, l.gate), refLinear(h, l.up)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			down := refLinear(g, l.down)
			for i := range down {
				xs[t][i] += down[i]
			}
		}
	}
	out := make([][]float64, len(ids))
	for t := range ids {
		out[t] = refLinear(refRMSNorm(xs[t], r.norm, eps), r.lmHead)
	}
	return out
}
