package cpu

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// Paged attention and the KV write (see primitives/attention.go for the
// cache layout and the masking rules).
//
// The attention kernels share one unit of work: a sequence, a range of its
// KV heads, a tile of its query tokens and a range of keys (the whole
// visible context on the single pass, one partition on the split path). A
// unit walks its keys block by block and serves every query token of the
// tile and every query head of each KV head's group from each K and V row
// while it is in the cache, so a row is read from memory once per step (and
// query tile). It reads whole token rows of a block, all its KV heads, in
// memory order, which lets the hardware prefetchers stream: one head's rows
// are 1/kv_heads of every block, and walking them alone ran several times
// slower. The heads of multi-token tiles are split over several units only
// when the dispatch has too few units to keep every worker busy.
//
// A unit of one query token (a decode row) takes each block straight from
// the cache (float16 and bfloat16 are widened in registers, never into a
// buffer): the scores of the block's keys for all the token's query heads,
// K token row by token row in memory order, two query heads of a group
// sharing each widened chunk, while the next block's K rows are prefetched;
// then the weighted values, a head at a time, each output chunk held in
// registers across the block's keys, while the next block's V rows are
// prefetched. (Kernels taking one token row at a time, the outputs in
// memory, took 1.6 times as long on a cache in L3.) A tile of several
// tokens widens the block's rows once and runs, per query row, block
// kernels that take eight keys at a time. The kernels are AVX2 assembly
// where the CPU has it (attention_amd64.s; the token kernels in 512-bit
// registers where it has AVX-512 and the head size is a multiple of 32),
// else loops over the vec routines.
//
// Each unit keeps, per row (query token × query head), the running maximum
// m, the running sum l and the unnormalised output O of an online softmax
// whose scores are in log2 units, so that every exponential is an exp2.
// Units are handed to the workers longest first from a shared counter. Each
// output row belongs to exactly one unit and is accumulated in a fixed key
// order whatever the units' head ranges, so results do not depend on the
// number of workers.

// queryTileRows bounds the query rows of one query head's group that a
// tile serves: enough to reuse each K/V row many times, few enough that the
// rows' state stays in the caches.
const queryTileRows = 32

// unitsPerWorker is how many units per worker a dispatch wants, splitting
// KV heads over several units if needed, so that uneven units balance.
const unitsPerWorker = 4

// attnLog2E converts natural-log units to log2 units.
const attnLog2E = math.Log2E

// attention is one attention dispatch: its params and views of its buffers.
type attention struct {
	p                    *primitives.PagedAttentionParams
	hs, bs, heads, kvh   int
	group                int // query heads per KV head
	parts                int // partitions per row in the split scratch
	q, k, v, out, tmpOut floats
	tables, seqLens, cu  []int32
	sinks                []float32 // nil without sinks
	maxLogits, expSums   []float32 // the split path's partition statistics

	qScale          float32 // applied to q when it is loaded
	capInv, capMul  float32 // softcap: score = tanh(x·capInv)·capMul
	tileTokens      int     // query tokens per unit
	window, partLen int
}

func newAttention(c *Call, dt graph.DType, hs, bs int) (*attention, error) {
	p := c.Params.(*primitives.PagedAttentionParams)
	if int(p.HeadSize) != hs || int(p.BlockSize) != bs {
		return nil, fmt.Errorf("params for head size %d and block size %d reached the kernel for %d and %d", p.HeadSize, p.BlockSize, hs, bs)
	}
	a := &attention{
		p: p, hs: hs, bs: bs, heads: int(p.NumHeads), kvh: int(p.NumKVHeads),
		parts: int(p.NumPartitions), window: int(p.SlidingWindow), partLen: int(p.PartitionSize),
		qScale: p.Scale * attnLog2E,
	}
	// The split units cut a sequence's keys at the same partition bounds
	// for all its rows, so every row must have partitions of PartitionSize
	// keys, as the CPU's Caps give (no bound on their number).
	longest := min(int(p.MaxSeqLen), int(p.MaxBlocksPerSeq)*bs)
	if p.NumPartitions > 0 && primitives.AttentionPartitionKeys(a.partLen, a.parts, longest) != a.partLen {
		return nil, fmt.Errorf("%d partitions of %d keys do not hold rows of %d keys: the CPU kernels take partitions of one size", a.parts, a.partLen, longest)
	}
	a.group = a.heads / a.kvh
	a.tileTokens = max(1, queryTileRows/a.group)
	if p.Softcap > 0 {
		a.qScale = p.Scale
		a.capInv, a.capMul = 1/p.Softcap, p.Softcap*attnLog2E
	}
	return a, nil
}

// checkMeta checks the sequence metadata, and the block tables too if
// tables is set, before any work reads through them.
func (a *attention) checkMeta(tables bool) error {
	p := a.p
	if err := primitives.CheckCuSeqlensQ(a.cu, int(p.NumTokens)); err != nil {
		return err
	}
	if err := primitives.CheckSeqLens(a.seqLens, int(p.MaxSeqLen), int(p.MaxBlocksPerSeq), a.bs); err != nil {
		return err
	}
	if !tables {
		return nil
	}
	return primitives.CheckBlockTables(a.tables, int(p.MaxBlocksPerSeq), a.seqLens, a.bs, int(p.NumBlocks))
}

// keyRange returns the keys [lo, hi) that query token t of sequence s sees:
// up to its causal frontier, within the sliding window. lo == hi when none.
func (a *attention) keyRange(s, t int) (lo, hi int) {
	qLen := int(a.cu[s+1] - a.cu[s])
	hi = int(a.seqLens[s]) - qLen + (t - int(a.cu[s])) + 1
	if hi <= 0 {
		return 0, 0
	}
	if a.window > 0 {
		lo = max(0, hi-a.window)
	}
	return lo, hi
}

// partitions returns the partitions [pLo, pHi) that hold the keys [lo, hi).
// The split kernel writes exactly these for a row and merges exactly these.
func (a *attention) partitions(lo, hi int) (pLo, pHi int) {
	if lo >= hi {
		return 0, 0
	}
	return lo / a.partLen, primitives.Groups(hi, a.partLen)
}

// attnUnit is a unit of attention work; see the top of the file.
type attnUnit struct {
	seq          int
	g0, g1       int // KV heads
	t0, t1       int // query tokens
	part         int // partition, or -1 on the single pass
	keyLo, keyHi int
}

func (u attnUnit) cost() int { return (u.t1 - u.t0) * (u.g1 - u.g0) * (u.keyHi - u.keyLo + 1) }

// units lists the work of a dispatch for the given number of workers,
// longest first. On the single pass every query tile has units (rows that
// see no key get zeros); on the split path a tile has units for each
// partition its rows see.
func (a *attention) units(split bool, workers int) []attnUnit {
	var pieces []attnUnit // all KV heads
	for s := range len(a.seqLens) {
		for t0 := int(a.cu[s]); t0 < int(a.cu[s+1]); t0 += a.tileTokens {
			t1 := min(t0+a.tileTokens, int(a.cu[s+1]))
			keyLo, keyHi := math.MaxInt, 0
			for t := t0; t < t1; t++ {
				if lo, hi := a.keyRange(s, t); lo < hi {
					keyLo, keyHi = min(keyLo, lo), max(keyHi, hi)
				}
			}
			keyLo = min(keyLo, keyHi)
			if !split {
				pieces = append(pieces, attnUnit{s, 0, a.kvh, t0, t1, -1, keyLo, keyHi})
				continue
			}
			pLo, pHi := a.partitions(keyLo, keyHi)
			for p := pLo; p < pHi; p++ {
				pieces = append(pieces, attnUnit{s, 0, a.kvh, t0, t1, p, max(keyLo, p*a.partLen), min(keyHi, (p+1)*a.partLen)})
			}
		}
	}
	// Too few pieces for the workers: split the heads of the tiles into the
	// fewest ranges that give enough units. A tile is bound by arithmetic; a
	// decode piece streams whole token rows, and parts of rows read far
	// slower (8 one-head units took 8 times as long as one unit of 8 heads),
	// so its heads stay together: parallel decode comes from partitions.
	tiles := 0
	for _, u := range pieces {
		if u.t1-u.t0 > 1 {
			tiles++
		}
	}
	parts := a.kvh
	for d := 1; d <= a.kvh; d++ {
		if a.kvh%d == 0 && len(pieces)+tiles*(d-1) >= unitsPerWorker*workers {
			parts = d
			break
		}
	}
	var us []attnUnit
	for _, u := range pieces {
		n := a.kvh
		if u.t1-u.t0 > 1 {
			n /= parts
		}
		for g := 0; g < a.kvh; g += n {
			u.g0, u.g1 = g, g+n
			us = append(us, u)
		}
	}
	slices.SortStableFunc(us, func(x, y attnUnit) int { return y.cost() - x.cost() })
	return us
}

// attnRows is a worker's scratch: the state of a unit's rows, one row's
// (or, for a single query token, every row's) scores of a block, and a
// tile's block of K and V rows widened to float32. Row (i·heads +
// g−g0)·group + j is query token t0+i with query head g·group+j, where
// heads = g1−g0. Its contents are undefined until a unit writes them.
type attnRows struct {
	q, o       []float32          // [rows][hs]: scaled queries, unnormalised outputs
	m, l       []float32          // [rows]: running maximum and sum, log2 units
	lo, hi     [queryTileRows]int // [tokens]: each query token's visible keys
	s          []float32          // [heads·group][bs]: scores, then weights, of one block
	kbuf, vbuf []float32          // [bs][heads][hs]: K and V rows widened (tiles)
	buf        *[]float32         // the pooled storage of the slices above
}

// getRows gives w the scratch for units of up to tokens query tokens,
// from the scratch pool: a decode step runs attention in every layer, and
// allocating it per dispatch cost a tenth of a short dispatch's time in
// the allocator and the collector. It is sized to the dispatch's units, not
// the largest tile.
func (a *attention) getRows(w *attnRows, tokens int) {
	rows := tokens * a.heads
	kv := 0
	if tokens > 1 && a.k.dt != graph.Float32 {
		kv = a.bs * a.kvh * a.hs
	}
	w.buf = getFloats(2*rows*a.hs + 2*rows + a.heads*a.bs + 2*kv)
	rest := *w.buf
	take := func(n int) []float32 {
		s := rest[:n:n]
		rest = rest[n:]
		return s
	}
	w.q, w.o, w.m, w.l = take(rows*a.hs), take(rows*a.hs), take(rows), take(rows)
	w.s, w.kbuf, w.vbuf = take(a.heads*a.bs), take(kv), take(kv)
}

// putRows gives w's scratch back to the pool.
func (w *attnRows) putRows() {
	if w.buf != nil {
		putFloats(w.buf)
		w.buf = nil
	}
}

// attend runs the online softmax of unit u's rows over its keys.
func (a *attention) attend(u attnUnit, w *attnRows) {
	hs, g := a.hs, a.group
	tokens, rowsPerToken := u.t1-u.t0, (u.g1-u.g0)*g
	rows := tokens * rowsPerToken
	for i := range tokens {
		w.lo[i], w.hi[i] = a.keyRange(u.seq, u.t0+i)
		for r := i * rowsPerToken; r < (i+1)*rowsPerToken; r++ {
			q := w.q[r*hs : (r+1)*hs]
			a.q.load(q, ((u.t0+i)*a.heads+u.g0*g+r%rowsPerToken)*hs)
			vec.ScaleF32(q, a.qScale)
		}
	}
	clear(w.o[:rows*hs])
	clear(w.l[:rows])
	for r := range rows {
		w.m[r] = float32(math.Inf(-1))
	}
	if tokens == 1 {
		a.attendToken(u, w)
	} else {
		a.attendTile(u, w)
	}
}

// attendToken attends a unit of one query token (a decode row). Each block
// is read in memory order, its K rows and then its V rows, one token row
// (the unit's KV heads) at a time, widened once into a buffer that stays in
// the L1 cache and used by all the token's query heads: the scores of the
// whole block first, then its weighted values.
func (a *attention) attendToken(u attnUnit, w *attnRows) {
	hs, bs, g := a.hs, a.bs, a.group
	rows := (u.g1 - u.g0) * g
	table := a.tables[u.seq*int(a.p.MaxBlocksPerSeq):]
	for b := u.keyLo / bs; b*bs < u.keyHi; b++ {
		j0, j1 := max(u.keyLo, b*bs), min(u.keyHi, (b+1)*bs)
		slot0 := int(table[b])*bs - b*bs // slot of key j is slot0+j
		off, n := ((slot0+j0)*a.kvh+u.g0)*hs, j1-j0
		ahead := 0
		if (b+1)*bs < u.keyHi {
			ahead = (int(table[b+1]) - int(table[b])) * bs * a.kvh * hs
		}
		tokenDots(w.s, bs, w.q[:rows*hs], a.k, off, a.kvh*hs, n, hs, g, ahead)
		for r := range rows {
			a.fold(w, r, w.s[r*bs:r*bs+n])
		}
		tokenAxpys(w.o[:rows*hs], w.s, bs, a.v, off, a.kvh*hs, n, hs, g, ahead)
	}
}

// attendTile attends a unit of several query tokens (a prefill or varlen
// tile), block by block: the block's K and V rows of the unit's heads are
// widened once, in memory order, then each row takes the scores of the
// block's keys it sees, folds them, and adds the weighted values.
func (a *attention) attendTile(u attnUnit, w *attnRows) {
	hs, bs, g := a.hs, a.bs, a.group
	tokens, rowsPerToken := u.t1-u.t0, (u.g1-u.g0)*g
	table := a.tables[u.seq*int(a.p.MaxBlocksPerSeq):]
	for b := u.keyLo / bs; b*bs < u.keyHi; b++ {
		j0, j1 := max(u.keyLo, b*bs), min(u.keyHi, (b+1)*bs)
		slot0 := int(table[b])*bs - b*bs // slot of key j is slot0+j
		ks, kOff, stride := a.stage(a.k, w.kbuf, slot0, j0, j1, u.g0, u.g1)
		vs, vOff, _ := a.stage(a.v, w.vbuf, slot0, j0, j1, u.g0, u.g1)
		for i := range tokens {
			lo, hi := max(w.lo[i], j0), min(w.hi[i], j1)
			if lo >= hi {
				continue
			}
			for x := range rowsPerToken {
				r := i*rowsPerToken + x
				d := (lo-j0)*stride + x/g*hs // key lo, KV head g0 + x/g
				s := w.s[:hi-lo]
				blockScores(s, w.q[r*hs:(r+1)*hs], ks, kOff+d, stride)
				a.fold(w, r, s)
				blockValues(w.o[r*hs:(r+1)*hs], s, vs, vOff+d, stride)
			}
		}
	}
}

// fold takes row r's scores s of one block into its online softmax: it
// applies the softcap, raises the row's maximum (rescaling its sum and
// output) if a score exceeds it, and turns the scores into weights added to
// the sum.
func (a *attention) fold(w *attnRows, r int, s []float32) {
	top := float32(math.Inf(-1))
	for k, v := range s {
		if a.capMul != 0 {
			v = float32(math.Tanh(float64(v*a.capInv))) * a.capMul
			s[k] = v
		}
		top = max(top, v)
	}
	if top > w.m[r] {
		if w.l[r] != 0 {
			c := attnExp2(w.m[r] - top)
			vec.ScaleF32(w.o[r*a.hs:(r+1)*a.hs], c)
			w.l[r] *= c
		}
		w.m[r] = top
	}
	w.l[r] += blockExp2(s, w.m[r])
}

// stage returns the rows of keys [j0, j1) and KV heads [g0, g1) of a cache
// block as float32 rows, the first (key j0, head g0) at off and the keys
// stride apart, heads hs apart: the cache itself if it is float32, else the
// rows widened into buf in memory order, one run when the heads are all of
// a token's.
func (a *attention) stage(c floats, buf []float32, slot0, j0, j1, g0, g1 int) (rows []float32, off, stride int) {
	hs, kvh := a.hs, a.kvh
	if c.dt == graph.Float32 {
		return c.f32, ((slot0+j0)*kvh + g0) * hs, kvh * hs
	}
	n := (g1 - g0) * hs
	if g1-g0 == kvh {
		c.load(buf[:(j1-j0)*n], (slot0+j0)*n)
		return buf, 0, n
	}
	for j := j0; j < j1; j++ {
		c.load(buf[(j-j0)*n:(j-j0+1)*n], ((slot0+j)*kvh+g0)*hs)
	}
	return buf, 0, n
}

// blockScores sets s[j] to q·row j for the len(s) rows of len(q) elements
// that start at rows[off], stride elements apart.
func blockScores(s, q, rows []float32, off, stride int) {
	if len(s) == 0 {
		return
	}
	checkRows(len(rows), len(s), len(q), off, stride)
	if scoresAsm(s, q, rows[off:], stride) {
		return
	}
	for j := range s {
		o := off + j*stride
		s[j] = vec.DotF32(q, rows[o:o+len(q)])
	}
}

// blockValues adds Σ_j p[j]·row j to o, for the len(p) rows of len(o)
// elements that start at rows[off], stride elements apart.
func blockValues(o, p, rows []float32, off, stride int) {
	if len(p) == 0 {
		return
	}
	checkRows(len(rows), len(p), len(o), off, stride)
	if valuesAsm(o, p, rows[off:], stride) {
		return
	}
	for j, w := range p {
		x := off + j*stride
		vec.AxpyF32(o, w, rows[x:x+len(o)])
	}
}

// tokenDots sets s[r·bs+j] to q row r · k row (key j, KV head r/group), for
// the len(q)/hs rows of hs elements of q and the n keys of k from off,
// kstride elements apart, each key's rows one per KV head: one block's
// scores for a token's query heads. Unless ahead is 0, the assembly also
// prefetches the K rows ahead elements on (the next block's).
func tokenDots(s []float32, bs int, q []float32, k floats, off, kstride, n, hs, group, ahead int) {
	rows := len(q) / hs
	checkTokenRows(len(s), bs, rows, len(q), k.len()-off, kstride, n, hs, group)
	if tokenDotsAsm(s, bs, q, k, off, kstride, n, hs, group, ahead) {
		return
	}
	for j := range n {
		for r := range rows {
			s[r*bs+j] = k.dot(q[r*hs:(r+1)*hs], off+j*kstride+r/group*hs)
		}
	}
}

// tokenAxpys adds Σ_j p[r·bs+j] · v row (key j, KV head r/group) to o row r,
// for the len(o)/hs rows of hs elements of o and the n keys of v from off,
// as tokenDots: one block's weighted values for a token's query heads,
// summed over the keys in order.
func tokenAxpys(o, p []float32, bs int, v floats, off, vstride, n, hs, group, ahead int) {
	rows := len(o) / hs
	checkTokenRows(len(p), bs, rows, len(o), v.len()-off, vstride, n, hs, group)
	if tokenAxpysAsm(o, p, bs, v, off, vstride, n, hs, group, ahead) {
		return
	}
	for r := range rows {
		for j := range n {
			v.axpy(o[r*hs:(r+1)*hs], p[r*bs+j], off+j*vstride+r/group*hs)
		}
	}
}

// checkTokenRows panics unless rows rows of hs elements fill m elements,
// their weights (n of each row, bs apart) lie in p elements and n keys,
// kstride apart, of rows/group KV heads each lie in kv elements: the
// assembly does not check.
func checkTokenRows(p, bs, rows, m, kv, kstride, n, hs, group int) {
	if rows == 0 || m != rows*hs || group <= 0 || rows%group != 0 || n <= 0 || n > bs || kv < 0 ||
		kv < (n-1)*kstride+rows/group*hs || p < (rows-1)*bs+n {
		panic(fmt.Sprintf("cpu: attention token rows: %d rows of %d in %d elements, group %d, %d keys %d apart in %d elements, %d weights %d apart", rows, hs, m, group, n, kstride, kv, p, bs))
	}
}

// blockExp2 replaces each score x of s by its weight 2^(x−m) and returns
// their sum: eight at a time in assembly where it runs, the rest with
// attnExp2.
func blockExp2(s []float32, m float32) float32 {
	n := len(s) &^ 7
	sum, ok := exp2SumAsm(s[:n], m)
	if !ok {
		n = 0
	}
	for i := n; i < len(s); i++ {
		s[i] = attnExp2(s[i] - m)
		sum += s[i]
	}
	return sum
}

// checkRows panics unless n rows of size elements, stride apart from off,
// lie in a buffer of length elements: the assembly kernels do not check.
// (The kernels check the metadata the offsets come from first, so this is a
// bug if it fires; the attention workers turn the panic into the dispatch's
// error.)
func checkRows(length, n, size, off, stride int) {
	end := off + (n-1)*stride + size
	if off < 0 || stride < size || end > length {
		panic(fmt.Sprintf("cpu: attention rows [%d, %d) outside a buffer of %d elements", off, end, length))
	}
}

// finish writes unit u's rows to out, normalised, with the sinks folded in.
func (a *attention) finish(u attnUnit, w *attnRows) {
	hs, rowsPerToken := a.hs, (u.g1-u.g0)*a.group
	for r := range (u.t1 - u.t0) * rowsPerToken {
		t, h := u.t0+r/rowsPerToken, u.g0*a.group+r%rowsPerToken
		o := w.o[r*hs : (r+1)*hs]
		m, l := w.m[r], w.l[r]
		switch {
		case l == 0:
			clear(o)
		case a.sinks != nil:
			sink := a.sinks[h] * attnLog2E
			top := max(m, sink)
			c := attnExp2(m - top)
			vec.ScaleF32(o, c/(l*c+attnExp2(sink-top)))
		default:
			vec.ScaleF32(o, 1/l)
		}
		a.out.store((t*a.heads+h)*hs, o)
	}
}

// finishPartition writes unit u's rows that see keys of its partition to
// the split scratch: the maximum, the sum and the normalised output.
func (a *attention) finishPartition(u attnUnit, w *attnRows) {
	hs, rowsPerToken := a.hs, (u.g1-u.g0)*a.group
	for r := range (u.t1 - u.t0) * rowsPerToken {
		i := r / rowsPerToken
		if pLo, pHi := a.partitions(w.lo[i], w.hi[i]); u.part < pLo || u.part >= pHi {
			continue
		}
		t, h := u.t0+i, u.g0*a.group+r%rowsPerToken
		idx := (t*a.heads+h)*a.parts + u.part
		o := w.o[r*hs : (r+1)*hs]
		vec.ScaleF32(o, 1/w.l[r])
		a.maxLogits[idx], a.expSums[idx] = w.m[r], w.l[r]
		a.tmpOut.store(idx*hs, o)
	}
}

// run attends every unit on the call's workers, each with its own scratch.
// A panic in a worker (a bug: the metadata have been checked) becomes the
// dispatch's error instead of ending the process.
func (a *attention) run(c *Call, split bool) (err error) {
	us := a.units(split, c.Workers())
	tokens := 1
	for _, u := range us {
		tokens = max(tokens, u.t1-u.t0)
	}
	var next atomic.Int64
	var once sync.Once
	work := func() {
		defer func() {
			if r := recover(); r != nil {
				once.Do(func() { err = panicError("attention worker", r) })
				next.Store(int64(len(us))) // stop the others
			}
		}()
		var w attnRows // scratch taken once this worker has a unit
		defer w.putRows()
		for {
			i := int(next.Add(1) - 1)
			if i >= len(us) {
				return
			}
			if w.buf == nil {
				a.getRows(&w, tokens)
			}
			a.attend(us[i], &w)
			if split {
				a.finishPartition(us[i], &w)
			} else {
				a.finish(us[i], &w)
			}
		}
	}
	// One worker loop per chunk of the pool (a goroutine started here would
	// queue behind the spinning helpers and start late); the loops take the
	// units, longest first, from next.
	workers := min(c.Workers(), len(us))
	c.Parallel(workers, 1, func(int, int) { work() })
	return err
}

// pagedAttentionKernel is the single pass: args q, k_cache, v_cache,
// block_tables, seq_lens, cu_seqlens_q, [sinks,] out.
func pagedAttentionKernel(dt graph.DType, hs, bs int, sinks bool) Kernel {
	return func(c *Call) error {
		a, err := newAttention(c, dt, hs, bs)
		if err != nil {
			return err
		}
		a.bindMeta(c, dt)
		n := 6
		if sinks {
			a.sinks = c.F32(n)
			n++
		}
		a.out = newFloats(dt, c.Args[n].Bytes)
		if err := a.checkMeta(true); err != nil {
			return err
		}
		return a.run(c, false)
	}
}

// pagedAttentionSplitKernel is the split path: args q, k_cache, v_cache,
// block_tables, seq_lens, cu_seqlens_q, [sinks,] max_logits, exp_sums,
// tmp_out, counters, out. Every partition of every row is attended, then
// the rows' partitions are merged (reduceRow) in partition order. The GPU
// kernels count a row's finished partitions in counters so that the last
// one merges; this one runs the merge after all of them, so it only checks
// that the runtime gave them zeroed.
func pagedAttentionSplitKernel(dt graph.DType, hs, bs int, sinks bool) Kernel {
	return func(c *Call) error {
		a, err := newAttention(c, dt, hs, bs)
		if err != nil {
			return err
		}
		a.bindMeta(c, dt)
		n := 6
		if sinks {
			a.sinks = c.F32(n)
			n++
		}
		a.maxLogits, a.expSums = c.F32(n), c.F32(n+1)
		a.tmpOut = newFloats(dt, c.Args[n+2].Bytes)
		if i := slices.IndexFunc(c.I32(n+3), func(v int32) bool { return v != 0 }); i >= 0 {
			return fmt.Errorf("the split-KV counters came in with %d at %d; they must be zero (a zeroed scratch buffer)", c.I32(n + 3)[i], i)
		}
		a.out = newFloats(dt, c.Args[n+4].Bytes)
		if err := a.checkMeta(true); err != nil {
			return err
		}
		if err := a.run(c, true); err != nil {
			return err
		}
		seqOf := make([]int32, a.p.NumTokens)
		for s := range len(a.seqLens) {
			for t := a.cu[s]; t < a.cu[s+1]; t++ {
				seqOf[t] = int32(s)
			}
		}
		c.Parallel(len(seqOf)*a.heads, 64, func(lo, hi int) {
			acc, row := make([]float32, hs), make([]float32, hs)
			for x := lo; x < hi; x++ {
				t, h := x/a.heads, x%a.heads
				a.reduceRow(t, h, int(seqOf[t]), acc, row)
			}
		})
		return nil
	}
}

func (a *attention) bindMeta(c *Call, dt graph.DType) {
	a.q = newFloats(dt, c.Args[0].Bytes)
	a.k = newFloats(dt, c.Args[1].Bytes)
	a.v = newFloats(dt, c.Args[2].Bytes)
	a.tables, a.seqLens, a.cu = c.I32(3), c.I32(4), c.I32(5)
}

// reduceRow merges the partitions of query token t, head h of sequence s.
// With M the largest partition maximum (and sink), partition p weighs
// w_p = l_p·2^(m_p−M) and out = Σ_p w_p·tmp_out_p / (Σ_p w_p + 2^(sink−M)).
func (a *attention) reduceRow(t, h, s int, acc, row []float32) {
	hs := a.hs
	out := (t*a.heads + h) * hs
	base := (t*a.heads + h) * a.parts
	pLo, pHi := a.partitions(a.keyRange(s, t))
	switch {
	case pLo == pHi:
		clear(acc)
		a.out.store(out, acc)
		return
	case pHi-pLo == 1 && a.sinks == nil:
		// One partition is the answer already: copy it exactly.
		a.out.store(out, a.tmpOut.row(row, (base+pLo)*hs))
		return
	}
	top := float32(math.Inf(-1))
	if a.sinks != nil {
		top = a.sinks[h] * attnLog2E
	}
	for p := pLo; p < pHi; p++ {
		top = max(top, a.maxLogits[base+p])
	}
	clear(acc)
	var sum float32
	for p := pLo; p < pHi; p++ {
		wt := a.expSums[base+p] * attnExp2(a.maxLogits[base+p]-top)
		sum += wt
		vec.AxpyF32(acc, wt, a.tmpOut.row(row, (base+p)*hs))
	}
	if a.sinks != nil {
		sum += attnExp2(a.sinks[h]*attnLog2E - top)
	}
	vec.ScaleF32(acc, 1/sum)
	a.out.store(out, acc)
}

// kvWriteKernel copies K and V rows into their slots: args k_cache,
// v_cache, key, value, slot_mapping. The slots are checked before anything
// is written.
func kvWriteKernel(dt, slotDT graph.DType) Kernel {
	return func(c *Call) error {
		if slotDT == graph.Int32 {
			return kvWrite(c, c.I32(4), dt.Size())
		}
		return kvWrite(c, c.I64(4), dt.Size())
	}
}

func kvWrite[S int32 | int64](c *Call, slots []S, elemSize int) error {
	p := c.Params.(*primitives.KVWriteParams)
	if err := primitives.CheckSlots(slots, int(p.NumSlots)); err != nil {
		return err
	}
	row := int(p.KVHeads) * int(p.HeadSize) * elemSize
	kc, vc, k, v := c.Args[0].Bytes, c.Args[1].Bytes, c.Args[2].Bytes, c.Args[3].Bytes
	c.Parallel(len(slots), max(1, 64<<10/max(row, 1)), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			s := int(slots[t])
			if s < 0 {
				continue
			}
			copy(kc[s*row:(s+1)*row], k[t*row:(t+1)*row])
			copy(vc[s*row:(s+1)*row], v[t*row:(t+1)*row])
		}
	})
	return nil
}

func init() {
	for _, dt := range primitives.AttentionDTypes {
		for _, slot := range []graph.DType{graph.Int32, graph.Int64} {
			mustRegister(primitives.KVWriteKernel(dt, slot), kvWriteKernel(dt, slot))
		}
		for _, hs := range primitives.AttentionHeadSizes {
			for _, bs := range primitives.AttentionBlockSizes {
				for _, sinks := range []bool{false, true} {
					mustRegister(primitives.PagedAttentionKernel(dt, hs, bs, sinks), pagedAttentionKernel(dt, hs, bs, sinks))
					mustRegister(primitives.PagedAttentionSplitKernel(dt, hs, bs, sinks), pagedAttentionSplitKernel(dt, hs, bs, sinks))
				}
			}
		}
	}
}

// attnExp2 returns 2^x in float32 to within a few units in the last place:
// x is rounded to n + f with |f| ≤ 1/2, 2^f comes from its Taylor series to
// degree 7 (truncation below 1e-8), and 2^n from the exponent bits. It is
// exact at 0, where the largest score of a row lands, and 0 below −126.
func attnExp2(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < -126:
		return 0
	case x > 127:
		return float32(math.Inf(1))
	}
	t := float64(x)
	n := int32(t - 0.5)
	if t >= 0 {
		n = int32(t + 0.5)
	}
	f := (t - float64(n)) * math.Ln2
	p := 1 + f*(1+f*(1.0/2+f*(1.0/6+f*(1.0/24+f*(1.0/120+f*(1.0/720+f*(1.0/5040)))))))
	return float32(p) * math.Float32frombits(uint32(n+127)<<23)
}
