package cuda

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The bulk GEMV's early fill, decided without a GPU (bulkearly_linux.go):
// a device that is never opened, with the bulk GEMV kernels and a writer
// at made-up function addresses and buffers at made-up addresses.

// earlyRig is that device, with the GEMV, the gated GEMV and the fused
// norm's GEMV, each with both bulk variants, copy_bytes as the writer, and
// the buffers: three weights (w0 to w2), x, a source and the outputs.
type earlyRig struct {
	d                   *Device
	gemv, gated, norm   *kernel
	copyK               *kernel
	w                   [3]*buffer
	x, src, sum, out    *buffer
	mm                  *primitives.MatMulParams
	gp                  *primitives.MatMulSiLUMulParams
	np                  *primitives.AddRMSNormLinearParams
	uploadDst, spareDst *buffer
}

func newEarlyRig(t *testing.T) *earlyRig {
	t.Helper()
	d := &Device{caps: primitives.Caps{MaxThreadsPerGroup: 1024}, maxGrid: [3]int{1 << 30, 65535, 65535}, bulkEarly: true}
	mk := func(name string, fn uintptr, bulk bool) *kernel {
		k := catalogKernel(t, name, fn)
		if bulk {
			k.mma, k.bulk, k.bulkEarly = fn+1, fn+2, fn+3
		}
		return k
	}
	rg := &earlyRig{d: d,
		gemv:  mk("matmul_bf16_gemv", 0x1000, true),
		gated: mk("matmul_silu_mul_bf16", 0x2000, true),
		norm:  mk("add_rms_norm_matmul_bf16", 0x3000, true),
		copyK: mk(primitives.CopyKernel, 0x4000, false),
		mm:    &primitives.MatMulParams{M: 1, N: 64, K: 64, Batch: 1, TransposeB: 1, MMA: 1, Split: 8, TileRows: 16, Bulk: 3},
		gp:    &primitives.MatMulSiLUMulParams{M: 1, N: 32, K: 64, MMA: 1, Split: 8, Bulk: 3},
		np:    &primitives.AddRMSNormLinearParams{N: 64, K: 64, MMA: 1, Split: 8, TileRows: 16, Bulk: 3},
	}
	at := uint64(0x100000)
	buf := func(n int64) *buffer {
		b := &buffer{dev: d, ptr: at, n: n}
		at += 0x100000
		return b
	}
	for i := range rg.w {
		rg.w[i] = buf(64 * 64 * 2)
	}
	rg.x, rg.src, rg.sum, rg.out = buf(4096), buf(64*64*2), buf(4096), buf(4096)
	rg.uploadDst, rg.spareDst = buf(4096), buf(4096)
	return rg
}

// foreignBuffer is a buffer of another device (its methods are never
// called).
type foreignBuffer struct{ runtime.Buffer }

func (rg *earlyRig) whole(b *buffer, name string, access primitives.Access) runtime.BufferArg {
	return runtime.BufferArg{Buffer: b, Size: b.n, Access: access, Name: name}
}

// layer appends the three bulk products: the GEMV of x by w0, the gated
// GEMV of its output by w1, and the fused norm's GEMV of x by w2.
func (rg *earlyRig) layer(l *runtime.CommandList) {
	grid, group := primitives.Dim3{X: 2, Y: 1, Z: 1}, primitives.Dim3{X: primitives.GEMVThreads, Y: 1, Z: 1}
	r, w := primitives.Read, primitives.Write
	l.Dispatch(rg.gemv, grid, group, []runtime.BufferArg{rg.whole(rg.x, "a", r), rg.whole(rg.w[0], "b", r), rg.whole(rg.out, "out", w)}, rg.mm, 0)
	l.Dispatch(rg.gated, grid, group, []runtime.BufferArg{rg.whole(rg.out, "x", r), rg.whole(rg.w[1], "w", r), rg.whole(rg.sum, "out", w)}, rg.gp, 0)
	l.Dispatch(rg.norm, grid, group, []runtime.BufferArg{rg.whole(rg.x, "x", r), rg.whole(rg.sum, "delta", r), rg.whole(rg.src, "norm_weight", r),
		rg.whole(rg.w[2], "w", r), rg.whole(rg.out, "sum", w), rg.whole(rg.spareDst, "out", w)}, rg.np, 0)
}

// copyInto appends a copy_bytes dispatch of n bytes from src into dst at
// off, with the given access for dst.
func (rg *earlyRig) copyInto(l *runtime.CommandList, dst *buffer, off, n int64, access primitives.Access) {
	cp := primitives.CopyDispatch(primitives.Ref{}, primitives.Ref{}, n)
	l.Dispatch(rg.copyK, cp.Grid, cp.Group, []runtime.BufferArg{{Buffer: rg.src, Size: n, Access: primitives.Read, Name: "src"},
		{Buffer: dst, Offset: off, Size: n, Access: access, Name: "dst"}}, cp.Params, 0)
}

// decisions is the names of the bulk launches of l's launches, in order:
// each "<kernel>+bulk" or "<kernel>+bulk-early".
func (rg *earlyRig) decisions(l *runtime.CommandList) string {
	var names []string
	for _, x := range rg.d.launchesOf(l) {
		if x.k != nil && x.k != rg.copyK {
			names = append(names, x.name())
		}
	}
	return strings.Join(names, " ")
}

// TestBulkEarlyDecision: a bulk launch copies its weights before
// grid_dependency_wait only where no dispatch or upload of its list writes
// any byte of their buffer and they are not a rebound argument; the others
// of the list still do.
func TestBulkEarlyDecision(t *testing.T) {
	const (
		gemv, gemvEarly   = "matmul_bf16_gemv+bulk", "matmul_bf16_gemv+bulk-early"
		gated, gatedEarly = "matmul_silu_mul_bf16+bulk", "matmul_silu_mul_bf16+bulk-early"
		norm, normEarly   = "add_rms_norm_matmul_bf16+bulk", "add_rms_norm_matmul_bf16+bulk-early"
	)
	rg := newEarlyRig(t)
	all := strings.Join([]string{gemvEarly, gatedEarly, normEarly}, " ")
	cases := []struct {
		name  string
		build func(l *runtime.CommandList)
		off   bool // LOOM_CUDA_BULK_EARLY=0
		want  string
	}{
		{"nothing writes the weights", func(l *runtime.CommandList) {
			l.Upload(rg.x, 0, make([]byte, 64))
			rg.copyInto(l, rg.uploadDst, 0, 1024, primitives.Write)
			rg.layer(l)
		}, false, all},
		{"LOOM_CUDA_BULK_EARLY=0", func(l *runtime.CommandList) { rg.layer(l) }, true, strings.Join([]string{gemv, gated, norm}, " ")},
		{"a dispatch before writes w0", func(l *runtime.CommandList) {
			rg.copyInto(l, rg.w[0], 0, rg.w[0].n, primitives.Write)
			rg.layer(l)
		}, false, strings.Join([]string{gemv, gatedEarly, normEarly}, " ")},
		{"a dispatch after reads and writes w1", func(l *runtime.CommandList) {
			rg.layer(l)
			rg.copyInto(l, rg.w[1], 0, 512, primitives.ReadWrite)
		}, false, strings.Join([]string{gemvEarly, gated, normEarly}, " ")},
		{"an upload writes w2", func(l *runtime.CommandList) {
			l.Upload(rg.w[2], 0, make([]byte, rg.w[2].n))
			rg.layer(l)
		}, false, strings.Join([]string{gemvEarly, gatedEarly, norm}, " ")},
		{"an upload writes 16 bytes in the middle of w0", func(l *runtime.CommandList) {
			l.Upload(rg.w[0], 4096, make([]byte, 16))
			rg.layer(l)
		}, false, strings.Join([]string{gemv, gatedEarly, normEarly}, " ")},
		{"a view of a sub-range of w1 is written", func(l *runtime.CommandList) {
			view := &buffer{dev: rg.d, ptr: rg.w[1].ptr + 2048, n: 256}
			rg.copyInto(l, view, 0, 256, primitives.Write)
			rg.layer(l)
		}, false, strings.Join([]string{gemvEarly, gated, normEarly}, " ")},
		{"a view past w1's last byte is written", func(l *runtime.CommandList) {
			view := &buffer{dev: rg.d, ptr: rg.w[1].ptr + uint64(rg.w[1].n), n: 256}
			rg.copyInto(l, view, 0, 256, primitives.Write)
			rg.layer(l)
		}, false, all},
		{"a view over w0 to w2 is written", func(l *runtime.CommandList) {
			view := &buffer{dev: rg.d, ptr: rg.w[0].ptr + 8000, n: int64(rg.w[2].ptr - rg.w[0].ptr)}
			rg.copyInto(l, view, 0, 16, primitives.Write)
			rg.layer(l)
		}, false, strings.Join([]string{gemv, gated, norm}, " ")},
		{"a written argument is not a buffer of this device", func(l *runtime.CommandList) {
			rg.layer(l)
			l.Passes[0].Commands[1].Args[2].Buffer = foreignBuffer{}
		}, false, strings.Join([]string{gemv, gated, norm}, " ")},
		{"w0's buffer is written outside the weights' span", func(l *runtime.CommandList) {
			rg.layer(l)
			l.Passes[0].Commands[0].Args[1].Size = 4096 // the GEMV reads its first 4 KB
			rg.copyInto(l, rg.w[0], 6000, 16, primitives.Write)
		}, false, strings.Join([]string{gemv, gatedEarly, normEarly}, " ")},
	}
	for _, c := range cases {
		rg.d.bulkEarly = !c.off
		l := &runtime.CommandList{}
		l.NewPass()
		c.build(l)
		if got := rg.decisions(l); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	rg.d.bulkEarly = true
	// Rebound arguments of a replayed list: the weights (dispatch 1 of the
	// list, after the copy) late, any other argument as before.
	for _, c := range []struct {
		rebound []runtime.ReboundArg
		want    string
	}{
		{[]runtime.ReboundArg{{Dispatch: 1, Arg: 1}}, strings.Join([]string{gemv, gatedEarly, normEarly}, " ")},
		{[]runtime.ReboundArg{{Dispatch: 1, Arg: 0}, {Dispatch: 1, Arg: 2}, {Dispatch: 2, Arg: 0}, {Dispatch: 3, Arg: 3}}, strings.Join([]string{gemvEarly, gatedEarly, norm}, " ")},
		{[]runtime.ReboundArg{{Dispatch: 2, Arg: 1}, {Dispatch: 3, Arg: 2}}, strings.Join([]string{gemvEarly, gated, normEarly}, " ")},
	} {
		l := &runtime.CommandList{Replay: 1 << 50, Rebound: c.rebound}
		l.NewPass()
		l.Upload(rg.x, 0, make([]byte, 64))
		rg.copyInto(l, rg.uploadDst, 0, 1024, primitives.Write)
		rg.layer(l)
		if got := rg.decisions(l); got != c.want {
			t.Errorf("rebound %v:\n got %s\nwant %s", c.rebound, got, c.want)
		}
	}
}

// TestBulkEarlyReplayWalk: a resubmitted replayed list whose rebound
// output is bound into the weights' buffer of a launch that copies early
// does not walk as its exec (it is issued like any other list, its
// launches derived again: that launch late); bound elsewhere, it does.
func TestBulkEarlyReplayWalk(t *testing.T) {
	rg := newEarlyRig(t)
	hr := &hostRig{q: &queue{dev: rg.d}}
	mk := func(out *buffer) *runtime.CommandList {
		l := &runtime.CommandList{Replay: 1 << 51, Rebound: []runtime.ReboundArg{{Dispatch: 0, Arg: 1}}}
		l.NewPass()
		rg.copyInto(l, out, 0, 1024, primitives.Write)
		rg.layer(l)
		return l
	}
	first := mk(rg.uploadDst)
	r := hr.replay(t, first)
	r.early = earlyWeights(r.launches) // as newReplay sets it
	if len(r.early) != 3 {
		t.Fatalf("%d early weights' buffers, want 3 (%s)", len(r.early), rg.decisions(first))
	}
	for _, c := range []struct {
		name string
		out  *buffer
		ok   bool
	}{
		{"the same output", rg.uploadDst, true},
		{"another output", rg.spareDst, true},
		{"w1", rg.w[1], false},
		{"a view inside w2", &buffer{dev: rg.d, ptr: rg.w[2].ptr + 1024, n: 2048}, false},
	} {
		if _, _, ok := r.walk(mk(c.out), nil, nil); ok != c.ok {
			t.Errorf("the rebound output bound to %s: walked %v, want %v", c.name, ok, c.ok)
		}
	}
	// Issued like any other list, that list's launches have w1's late.
	if got, want := rg.decisions(mk(rg.w[1])), "matmul_bf16_gemv+bulk-early matmul_silu_mul_bf16+bulk add_rms_norm_matmul_bf16+bulk-early"; got != want {
		t.Errorf("launches derived again:\n got %s\nwant %s", got, want)
	}
}
