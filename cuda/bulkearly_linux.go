package cuda

import (
	"cmp"
	"slices"
	"sort"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The bulk GEMV's early fill. Each bulk GEMV kernel (matmul.cu's mma_bulk)
// comes twice: <name>_mma_bulk copies the first ring fill of weight rows
// into shared memory after grid_dependency_wait ("late"), and
// <name>_mma_bulk_early before it, so that its weight stream starts while
// the kernel before it still runs. Before the wait, a kernel node with a
// programmatic edge may overlap only its immediate predecessor in the same
// CUDA graph (common.cuh, grid_dependency_wait): every kernel before that
// has completed, its writes visible. A command list runs as one graph (or
// launch by launch in stream order, each launch after the previous one has
// completed), so the early copy is safe where no launch of the same list
// writes the weights. The device decides it per launch where it derives a
// list's launches (launchesOf), conservatively: a bulk launch copies early
// unless
//   - a dispatch of the list writes (Write or ReadWrite) any byte of the
//     buffer its weights are in, or an upload of the list copies into that
//     buffer: whole buffers are compared, as device address ranges, so a
//     write anywhere in the weights' buffer counts;
//   - its weights are a rebound argument of a replayed list
//     (runtime.CommandList.Rebound), which a later submission may bind to
//     a buffer the list writes;
//   - an argument of the list is not a buffer of this device.
//
// A replayed list's exec keeps the launches of the list's first
// submission: a later submission that binds a rebound argument the list
// writes to an early launch's weights' buffer is issued like any other
// list (replayList.walk), whose launches are derived again.
// LOOM_CUDA_BULK_EARLY=0 (Device.bulkEarly) keeps every launch late.

// addrRange is the device addresses [lo, hi) of a buffer.
type addrRange struct{ lo, hi uint64 }

// bufferRange is b's range; false if b is not a buffer of this device.
func bufferRange(b runtime.Buffer) (addrRange, bool) {
	x, ok := b.(*buffer)
	if !ok {
		return addrRange{}, false
	}
	return addrRange{x.ptr, x.ptr + uint64(x.n)}, true
}

// addrRanges is a union of address ranges, sorted, none overlapping or
// adjoining another.
type addrRanges []addrRange

// union sorts rs and merges the ranges that overlap or adjoin, in place.
func union(rs []addrRange) addrRanges {
	slices.SortFunc(rs, func(a, b addrRange) int { return cmp.Compare(a.lo, b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// overlaps reports whether r shares an address with a range of rs.
func (rs addrRanges) overlaps(r addrRange) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].hi > r.lo })
	return i < len(rs) && rs[i].lo < r.hi
}

// bulkWeight is the index of l's argument whose rows its bulk GEMV copies
// into shared memory (MatMulParams' b, stored [N, K]; the gated GEMV's and
// the fused norms' w), or -1 where l runs no bulk variant or its kernel
// has no early one.
func (l *launch) bulkWeight() int {
	if l.k == nil || l.lt != nil || l.k.bulk == 0 || l.k.bulkEarly == 0 {
		return -1
	}
	if f := l.function(); f != l.k.bulk && f != l.k.bulkEarly {
		return -1
	}
	var name string
	switch l.params.(type) {
	case *primitives.MatMulParams:
		name = "b"
	case *primitives.MatMulSiLUMulParams, *primitives.AddRMSNormLinearParams:
		name = "w"
	}
	i := slices.Index(l.k.args, name)
	if i >= len(l.args) {
		return -1
	}
	return i
}

// markBulkEarly sets early on the bulk launches of ls, a list's launches,
// that may copy their weights before grid_dependency_wait (see above);
// rebound is the list's Rebound.
func (d *Device) markBulkEarly(ls []launch, rebound []runtime.ReboundArg) {
	if !d.bulkEarly || !slices.ContainsFunc(ls, func(l launch) bool { return l.bulkWeight() >= 0 }) {
		return
	}
	ws, ok := writtenRanges(ls)
	if !ok {
		return
	}
	di := 0 // dispatches counted as in Rebound
	for i := range ls {
		l := &ls[i]
		if l.k == nil {
			continue
		}
		w := l.bulkWeight()
		if w >= 0 && !slices.Contains(rebound, runtime.ReboundArg{Dispatch: di, Arg: w}) {
			r, ok := bufferRange(l.args[w].Buffer)
			l.early = ok && !ws.overlaps(r)
		}
		di++
	}
}

// writtenRanges is the union of the buffers that ls's uploads and
// dispatches write; false if one of them is not a buffer of this device.
func writtenRanges(ls []launch) (addrRanges, bool) {
	var rs []addrRange
	for i := range ls {
		for _, a := range ls[i].args {
			if ls[i].k != nil && !a.Access.Writes() {
				continue // an upload writes its only argument
			}
			r, ok := bufferRange(a.Buffer)
			if !ok {
				return nil, false
			}
			rs = append(rs, r)
		}
	}
	return union(rs), true
}

// earlyWeights is the union of the weights' buffers of ls's launches that
// copy early, for replayList.walk; nil if none does.
func earlyWeights(ls []launch) addrRanges {
	var rs []addrRange
	for i := range ls {
		if l := &ls[i]; l.early {
			r, _ := bufferRange(l.args[l.bulkWeight()].Buffer)
			rs = append(rs, r)
		}
	}
	if rs == nil {
		return nil
	}
	return union(rs)
}
