package cpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// sampleKernel draws each sequence's token as primitives.Sample defines it,
// one sequence per piece of work (so the result does not depend on the
// number of workers), with the exponentials in float64; with logprobs, it
// also reports the log-probabilities of the sixth argument, dist.
func sampleKernel(dt graph.DType, logprobs bool) Kernel {
	return func(c *Call) error {
		p := c.Params.(*primitives.SampleParams)
		if p.Pass != primitives.SampleWhole {
			return fmt.Errorf("sampling pass %d (the split form, Caps.SampleSplit) is unsupported on the CPU", p.Pass)
		}
		s, v, w, top := int(p.S), int(p.V), int(p.W), int(p.Top)
		window := c.I32(4)[:s*w]
		for i, e := range window {
			switch t := primitives.WindowToken(e); {
			case int(t) < v:
			case e >= 0:
				return fmt.Errorf("window[%d] = %d is out of range [0, %d)", i, e, v)
			default:
				return fmt.Errorf("window[%d] = %d names token %d (repetition penalty only), out of range [0, %d)", i, e, t, v)
			}
		}
		logits, settings, keys, counters := c.Args[0].Bytes, c.F32(1), c.U32(2), c.I32(3)
		scratch, out := c.Args[5].Bytes, c.I32(6)
		var dist []byte
		var lpIDs []int32
		var lps []float32
		if logprobs {
			dist, scratch, out, lpIDs, lps = c.Args[5].Bytes, c.Args[6].Bytes, c.I32(7), c.I32(8), c.F32(9)
		}
		draw := func(i int) {
			row := scratch[i*v*4 : (i+1)*v*4]
			x := view[float32](row)
			var chosen func(float32) float32
			if logprobs { // first, while the scratch row is free
				copy(x, f32In(dt, dist, i*v, 1, v, x))
				chosen = rowLogprobs(x, lpIDs[i*(1+top)+1:(i+1)*(1+top)], lps[i*(1+top)+1:(i+1)*(1+top)])
			}
			if dt == graph.Float32 {
				copy(x, view[float32](logits)[i*v:(i+1)*v])
			} else {
				f32In(dt, logits, i*v, 1, v, x)
			}
			var set [primitives.SampleSettings]float32
			var key [primitives.SampleKeys]uint32
			copy(set[:], settings[i*len(set):])
			copy(key[:], keys[i*len(key):])
			out[i] = sampleRow(row, set, key, counters[i], window[i*w:(i+1)*w])
			if logprobs {
				lpIDs[i*(1+top)] = out[i]
				lps[i*(1+top)] = float32(math.NaN())
				if out[i] >= 0 {
					var one [1]float32
					lps[i*(1+top)] = chosen(f32In(dt, dist, i*v+int(out[i]), 1, 1, one[:])[0])
				}
			}
		}
		if s >= c.Workers() || logprobs {
			c.Parallel(s, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					draw(i)
				}
			})
			return nil
		}
		// Fewer sequences than workers (a decode step of one): a greedy
		// draw without penalties is the row's argmax, which the workers
		// take over parts of the row; the others go one at a time.
		for i := range s {
			if set := settings[i*primitives.SampleSettings : (i+1)*primitives.SampleSettings]; greedyArgmax(set) {
				out[i] = argmaxParallel(c, newFloats(dt, logits), i*v, v)
			} else {
				draw(i)
			}
		}
		return nil
	}
}

// greedyArgmax reports whether a sequence's settings make its draw the
// argmax of its logits: no temperature (greedy) and no penalty, so that
// sampleRow returns the first index of the largest logit, NaN never the
// largest, −1 where none exceeds −Inf.
func greedyArgmax(set []float32) bool {
	pen := set[primitives.SettingRepetitionPenalty]
	return !(set[primitives.SettingTemperature] > 0) && !(pen > 0 && pen != 1) &&
		finiteOr0(set[primitives.SettingPresencePenalty]) == 0 && finiteOr0(set[primitives.SettingFrequencyPenalty]) == 0
}

// argmaxParallel returns the first index of the largest of the n logits
// from off (−1 where none exceeds −Inf; NaN never wins), as sampleRow
// finds it, the row split over the call's workers: each part's first
// largest, then the parts in order, a later one taken only if larger.
func argmaxParallel(c *Call, x floats, off, n int) int32 {
	const grain = 16 << 10
	parts := min(c.Workers(), (n+grain-1)/grain)
	per := (n + parts - 1) / parts
	type best struct {
		m   float32
		arg int
	}
	res := make([]best, parts)
	c.Parallel(parts, 1, func(lo, hi int) {
		var buf [chunk]float32
		for p := lo; p < hi; p++ {
			b := best{float32(math.Inf(-1)), -1}
			for k := p * per; k < min(n, (p+1)*per); k += chunk {
				xs := x.row(buf[:min(chunk, n-k, (p+1)*per-k)], off+k)
				for i, v := range xs {
					if v > b.m {
						b = best{v, k + i}
					}
				}
			}
			res[p] = b
		}
	})
	b := best{float32(math.Inf(-1)), -1}
	for _, r := range res {
		if r.m > b.m {
			b = r
		}
	}
	return int32(b.arg)
}

// rowLogprobs writes to ids and lps the len(ids) largest values of x
// (NaN read as −Inf; largest first, ties by lower index) and their
// log-probabilities as primitives.Sample defines them, and returns the
// function that gives the log-probability of a value of x.
func rowLogprobs(x []float32, ids []int32, lps []float32) func(float32) float32 {
	m := float32(math.Inf(-1))
	for i, v := range x {
		if v != v {
			x[i] = float32(math.Inf(-1))
		}
		m = max(m, x[i])
	}
	z := 0.0
	for _, v := range x {
		if v == m {
			z++
		} else {
			z += math.Exp(float64(v) - float64(m))
		}
	}
	logZ := math.Log(z)
	lp := func(v float32) float32 {
		switch {
		case math.IsInf(float64(m), -1):
			return float32(math.NaN())
		case v == m:
			return float32(-logZ)
		case v != v:
			return float32(math.Inf(-1))
		}
		return float32(float64(v) - float64(m) - logZ)
	}
	// An insertion into the sorted list of the best so far: x is walked in
	// index order, so an equal value never displaces an earlier one.
	if len(ids) == 0 {
		return lp
	}
	n := 0
	for i, v := range x {
		if n == len(ids) && !(v > x[ids[n-1]]) {
			continue
		}
		j := min(n, len(ids)-1)
		for ; j > 0 && v > x[ids[j-1]]; j-- {
			ids[j] = ids[j-1]
		}
		ids[j] = int32(i)
		n = min(n+1, len(ids))
	}
	for j, id := range ids {
		lps[j] = lp(x[id])
	}
	return lp
}

// sampleRow draws one sequence's token from its logits (float32 in row,
// which it overwrites with the weights) by steps 1–5 of primitives.Sample.
func sampleRow(row []byte, set [primitives.SampleSettings]float32, key [primitives.SampleKeys]uint32, counter int32, window []int32) int32 {
	x := view[float32](row)
	for i, v := range x {
		if v != v {
			x[i] = float32(math.Inf(-1))
		}
	}
	pen, pres, freq := set[primitives.SettingRepetitionPenalty], finiteOr0(set[primitives.SettingPresencePenalty]), finiteOr0(set[primitives.SettingFrequencyPenalty])
	repeat := pen > 0 && pen != 1
	if repeat || pres != 0 || freq != 0 {
		penalize(x, window, pen, repeat, pres, freq)
	}
	m, arg := float32(math.Inf(-1)), -1
	for i, v := range x {
		if v > m {
			m, arg = v, i
		}
	}
	temp := set[primitives.SettingTemperature]
	if arg < 0 || !(temp > 0) {
		return int32(arg)
	}
	q := view[uint32](row)
	for i, v := range x {
		q[i] = weight(v, m, temp)
	}
	var tk, tp, tm uint32
	if k := key[primitives.KeyTopK]; k > 0 && int(k) < len(q) {
		tk = threshold(q, uint64(k), false, 0)
	}
	if p := set[primitives.SettingTopP]; p > 0 && p < 1 {
		pq := uint64(math.Ceil(float64(p) * (1 << 32)))
		tp = threshold(q, primitives.TopPGoal(keptWeight(q, tk), pq), true, tk)
	}
	if mp := set[primitives.SettingMinP]; mp > 0 {
		tm = uint32(math.Ceil(float64(min(mp, 1)) * (1 << primitives.WeightBits)))
	}
	t := max(tk, tp, tm, 1)
	u := primitives.Philox4x32([4]uint32{uint32(counter)}, [2]uint32{key[primitives.KeySeedLow], key[primitives.KeySeedHigh]})[0]
	r := primitives.MulShift32(keptWeight(q, t), uint64(u))
	var run uint64
	for i, w := range q {
		if w >= t {
			run += uint64(w)
			if run > r {
				return int32(i)
			}
		}
	}
	panic("sample: the draw fell past the kept weight") // r < the kept weight by construction
}

// penalize applies the penalties of step 1 of primitives.Sample to x. The
// window's entries are sorted by the token they name, so a token's entries
// are found together, in O(W log W) rather than the GPUs' scan of the
// window per entry (a server's window holds a whole sequence).
func penalize(x []float32, window []int32, pen float32, repeat bool, pres, freq float32) {
	keys := make([]int64, 0, len(window)) // token·2, plus 1 for an entry every penalty sees
	for _, e := range window {
		if t := primitives.WindowToken(e); t >= 0 {
			k := int64(t) << 1
			if e >= 0 {
				k |= 1
			}
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for i := 0; i < len(keys); {
		id, c := keys[i]>>1, 0
		for ; i < len(keys) && keys[i]>>1 == id; i++ {
			c += int(keys[i] & 1)
		}
		v := x[id]
		if repeat {
			if v > 0 {
				v /= pen
			} else {
				v *= pen
			}
		}
		if c > 0 {
			v -= pres
			for range c {
				v -= freq
			}
		}
		x[id] = v
	}
}

// finiteOr0 is v, or 0 (off) for an infinite or NaN penalty.
func finiteOr0(v float32) float32 {
	if math.Abs(float64(v)) <= math.MaxFloat32 {
		return v
	}
	return 0
}

// weight is a token's fixed-point weight: 2^31 at the maximum m, else
// trunc(e^((v−m)/T)·2^31), 0 for NaN.
func weight(v, m, temp float32) uint32 {
	if v == m {
		return 1 << primitives.WeightBits
	}
	e := math.Exp(float64((v - m) / temp))
	if !(e > 0) {
		return 0
	}
	return uint32(e * (1 << primitives.WeightBits))
}

// keptWeight is the total of the weights ≥ t.
func keptWeight(q []uint32, t uint32) uint64 {
	var sum uint64
	for _, w := range q {
		if w >= t {
			sum += uint64(w)
		}
	}
	return sum
}

// threshold returns the largest t such that the weights w ≥ max(t, floor)
// add up to at least goal, each counting 1 (or w with mass): a radix
// select over the weights' bytes, most significant first, with a histogram
// of the candidates that share the bytes chosen so far. The kernels on the
// GPUs run the same search. The caller guarantees that t = floor
// qualifies.
func threshold(q []uint32, goal uint64, mass bool, floor uint32) uint32 {
	var prefix uint32
	var above uint64 // the weight of the candidates above the prefix's range
	for shift := 24; shift >= 0; shift -= 8 {
		var h [256]uint64
		for _, w := range q {
			if w < floor || shift < 24 && w>>(shift+8) != prefix>>(shift+8) {
				continue
			}
			if mass {
				h[w>>shift&255] += uint64(w)
			} else {
				h[w>>shift&255]++
			}
		}
		b := 255
		for ; b > 0 && above+h[b] < goal; b-- {
			above += h[b]
		}
		prefix |= uint32(b) << shift
	}
	return prefix
}

func init() {
	for _, dt := range primitives.FloatDTypes {
		mustRegister(primitives.SampleKernel(dt), sampleKernel(dt, false))
		mustRegister(primitives.SampleLogprobsKernel(dt), sampleKernel(dt, true))
	}
}
