package loomtest

import (
	"fmt"
	"math"
	"math/big"
	"slices"

	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
)

// SampleRef draws a token from one row of logits as primitives.Sample
// defines it, written for clarity rather than speed: the exponentials in
// float64, the thresholds from a sort, the integer products with math/big.
// Besides the token (−1 if none can be drawn) it returns the draw's margin:
// the smallest relative distance between a decision's quantity and its
// boundary (the weights on either side of the top-k cut, the running total
// at the top-p cut and the goal, a weight and the min-p threshold, the
// drawn number and the ends of the chosen token's interval). A backend
// whose exponentials differ from float64's by a relative ε can draw
// another token only where the margin is below about 2ε; greedy draws
// have an infinite margin.
func SampleRef(logits []float64, o ops.Sampling, counter int32, window []int32) (token int, margin float64) {
	x := make([]float32, len(logits))
	for i, v := range logits {
		x[i] = float32(v)
		if math.IsNaN(v) {
			x[i] = float32(math.Inf(-1))
		}
	}
	counts := map[int32]int{}
	for _, id := range window {
		if id >= 0 {
			counts[id]++
		}
	}
	for id, c := range counts {
		if pen := o.RepetitionPenalty; pen != 0 && pen != 1 {
			if x[id] > 0 {
				x[id] /= pen
			} else {
				x[id] *= pen
			}
		}
		x[id] -= o.PresencePenalty
		for range c {
			x[id] -= o.FrequencyPenalty
		}
	}
	m := slices.Max(x)
	if math.IsInf(float64(m), -1) {
		return -1, math.Inf(1)
	}
	best := slices.Index(x, m)
	if o.Temperature == 0 {
		return best, math.Inf(1)
	}
	const one = 1 << primitives.WeightBits
	q := make([]uint64, len(x))
	exact := make([]float64, len(x)) // the weights before truncation
	for i, v := range x {
		exact[i] = one
		if v != m {
			exact[i] = math.Exp(float64((v-m)/o.Temperature)) * one
		}
		q[i] = uint64(exact[i])
	}
	order := make([]int, len(x)) // most likely first, ties by index
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return -cmpU(q[a], q[b]) })
	margin = math.Inf(1)
	// gap is the relative distance between the weights of ranks j and j+1,
	// which a perturbation could swap (not if their logits are equal).
	gap := func(j int) float64 {
		if j+1 >= len(order) || x[order[j]] == x[order[j+1]] {
			return math.Inf(1)
		}
		return (exact[order[j]] - exact[order[j+1]]) / exact[order[j]]
	}
	var tk, tp, tm uint64
	if k := o.TopK; k > 0 && k < len(x) {
		tk = q[order[k-1]]
		margin = min(margin, gap(k-1))
	}
	if p := o.TopP; p > 0 && p < 1 {
		var total uint64
		for _, w := range q {
			if w >= tk {
				total += w
			}
		}
		pq := uint64(math.Ceil(float64(p) * (1 << 32)))
		goal := ceilShift32(new(big.Int).Mul(big.NewInt(0).SetUint64(total), big.NewInt(0).SetUint64(pq)))
		var run uint64
		for j, i := range order {
			before := run
			run += q[i]
			if run >= goal {
				tp = q[i]
				margin = min(margin, float64(run-goal)/float64(total), float64(goal-before)/float64(total), gap(j))
				break
			}
		}
	}
	if mp := o.MinP; mp > 0 {
		tm = uint64(math.Ceil(float64(min(mp, 1)) * one))
		for _, e := range exact {
			margin = min(margin, math.Abs(e-float64(tm))/float64(tm))
		}
	}
	t := max(tk, tp, tm, 1)
	var total uint64
	for _, w := range q {
		if w >= t {
			total += w
		}
	}
	u := primitives.Philox4x32([4]uint32{uint32(counter)}, [2]uint32{uint32(o.Seed), uint32(o.Seed >> 32)})[0]
	prod := new(big.Int).Mul(big.NewInt(0).SetUint64(total), big.NewInt(int64(u)))
	r := prod.Rsh(prod, 32).Uint64()
	var run uint64
	for i, w := range q {
		if w < t {
			continue
		}
		before := run
		run += w
		if run > r {
			return i, min(margin, float64(r-before)/float64(total), float64(run-r)/float64(total))
		}
	}
	panic("SampleRef: the draw fell past the kept weight")
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ceilShift32 returns ceil(v / 2^32).
func ceilShift32(v *big.Int) uint64 {
	v.Add(v, big.NewInt(1<<32-1))
	return v.Rsh(v, 32).Uint64()
}

// LogprobsRef returns the log-probability of every token of a row of
// dist as primitives.Sample defines them, in float64 (NaN for every token
// of a row without a finite or +Inf value), and the ids of its top most
// likely tokens, most likely first, ties by lower id. dist holds float32
// values (rounded to the array's dtype); NaN is read as −Inf.
func LogprobsRef(dist []float64, top int) (lp []float64, ids []int) {
	x := make([]float64, len(dist))
	m := math.Inf(-1)
	for i, v := range dist {
		x[i] = v
		if math.IsNaN(v) {
			x[i] = math.Inf(-1)
		}
		m = max(m, x[i])
	}
	z := 0.0
	for _, v := range x {
		if v == m {
			z++
		} else {
			z += math.Exp(v - m)
		}
	}
	lp = make([]float64, len(x))
	for i, v := range x {
		switch {
		case math.IsInf(m, -1):
			lp[i] = math.NaN()
		case v == m:
			lp[i] = -math.Log(z)
		default:
			lp[i] = v - m - math.Log(z)
		}
	}
	ids = make([]int, len(x))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case x[a] > x[b]:
			return -1
		case x[a] < x[b]:
			return 1
		}
		return 0
	})
	return lp, ids[:top]
}

// LogprobsDiff compares log-probs as ops.SampleLogprobs reports them (ids
// and lps [S, 1+top], row-major) for rows of dist ([S, V], float32 values
// as LogprobsRef takes them) and the drawn tokens with LogprobsRef: column
// 0 the token and its log-probability, then the top ids exactly and each
// log-probability within the rounding of float32 arithmetic (of a float64
// result rounded to float32 where exact, the CPU's). It describes the
// first difference, or returns "".
func LogprobsDiff(dist []float64, v, top int, tokens, ids []int32, lps []float32, exact bool) string {
	atol, rtol := 2e-5, 1e-5
	if exact {
		atol, rtol = 1e-7, 1e-6
	}
	near := func(g float32, w float64) bool {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return math.IsNaN(float64(g)) == math.IsNaN(w) && (math.IsNaN(w) || float64(g) == w)
		}
		return math.Abs(float64(g)-w) <= atol+rtol*math.Abs(w)
	}
	for i, tok := range tokens {
		ref, refIDs := LogprobsRef(dist[i*v:(i+1)*v], top)
		rowIDs, rowLP := ids[i*(1+top):(i+1)*(1+top)], lps[i*(1+top):(i+1)*(1+top)]
		want := math.NaN()
		if tok >= 0 {
			want = ref[tok]
		}
		if rowIDs[0] != tok || !near(rowLP[0], want) {
			return fmt.Sprintf("row %d: column 0 is (%d, %v), want the token %d and %v", i, rowIDs[0], rowLP[0], tok, want)
		}
		for j, id := range refIDs {
			if int(rowIDs[1+j]) != id || !near(rowLP[1+j], ref[id]) {
				return fmt.Sprintf("row %d: top %d is (%d, %v), want (%d, %v); top ids %v, want %v", i, j, rowIDs[1+j], rowLP[1+j], id, ref[id], rowIDs[1:], refIDs)
			}
		}
	}
	return ""
}
