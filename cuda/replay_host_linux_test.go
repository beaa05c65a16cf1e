package cuda

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The host side of replayed lists, without a GPU: the walk over a
// resubmitted list, and its cost against the structure cache's keying.

// hostRig is a queue of a device that is never opened (no driver calls),
// with catalog kernels and buffers at made-up addresses.
type hostRig struct {
	q      *queue
	add    *kernel
	params *primitives.ElementwiseParams // shared by the lists, as a replay's lists share the recording's
	bufs   []*buffer
}

func newHostRig(tb testing.TB, nbufs int) *hostRig {
	d := &Device{caps: primitives.Caps{MaxThreadsPerGroup: 1024}, maxGrid: [3]int{1 << 30, 65535, 65535}}
	spec, ok := primitives.LookupKernel("add_f32")
	if !ok {
		tb.Fatal("no add_f32 in the catalog")
	}
	add, err := newKernel(spec, 0x1000)
	if err != nil {
		tb.Fatal(err)
	}
	p, _ := primitives.NewElementwiseParams([]int{256}, []int{256}, []int{256})
	rg := &hostRig{q: &queue{dev: d}, add: add, params: p}
	for i := range nbufs {
		rg.bufs = append(rg.bufs, &buffer{dev: d, ptr: uint64(0x10000 * (i + 1)), n: 4096})
	}
	return rg
}

// list is a replayed step's shape: fence waits, uploads (upload i of 16+i
// bytes), then dispatches of add_f32 over buffers in passes of 8 with
// barriers; dispatch i reads bufs (i, i+1) and writes out(i) from byte 512.
func (rg *hostRig) list(uploads, dispatches int, out func(i int) *buffer) *runtime.CommandList {
	sizes := make([]int, uploads)
	for i := range sizes {
		sizes[i] = 16 + i
	}
	return rg.listSized(sizes, dispatches, out)
}

// listSized is list with uploads of the given sizes, each into a buffer of
// its own.
func (rg *hostRig) listSized(uploads []int, dispatches int, out func(i int) *buffer) *runtime.CommandList {
	l := &runtime.CommandList{}
	l.NewPass()
	l.WaitFence(new(fence))
	for i, n := range uploads {
		l.Upload(&buffer{dev: rg.q.dev, ptr: uint64(0x1000000 * (i + 1)), n: int64(n)}, 0, make([]byte, n))
	}
	for i := range dispatches {
		if i > 0 && i%8 == 0 {
			l.UpdateFence(new(fence))
			l.NewPass()
		}
		a, b := rg.bufs[i%len(rg.bufs)], rg.bufs[(i+1)%len(rg.bufs)]
		l.Dispatch(rg.add, primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 256, Y: 1, Z: 1},
			[]runtime.BufferArg{{Buffer: a, Size: 1024, Name: "a"}, {Buffer: b, Size: 1024, Name: "b"}, {Buffer: out(i), Offset: 512, Size: 1024, Name: "out"}}, rg.params, 0)
		l.Barrier()
	}
	return l
}

// replay is the entry launchReplay would hold for l: its launches and an
// exec whose nodes carry l's values (the device calls left out).
func (rg *hostRig) replay(tb testing.TB, l *runtime.CommandList) *replayList {
	r := &replayList{launches: rg.q.dev.launchesOf(l)}
	e := &graphExec{nodes: make([]uintptr, len(r.launches))}
	for i := range r.launches {
		e.offs = append(e.offs, len(e.vals))
		if r.launches[i].k == nil {
			continue
		}
		var skip bool
		var err error
		if e.vals, skip, err = rg.q.values(&r.launches[i], e.vals); err != nil {
			tb.Fatal(err)
		}
		if !skip {
			e.nodes[i] = uintptr(i + 1)
		}
	}
	e.offs = append(e.offs, len(e.vals))
	r.exec = e
	return r
}

// stagedInGo gives r's exec a staging for the uploads at the head of its
// launches, laid out as queue.stage does, in Go memory.
func (r *replayList) stagedInGo(tb testing.TB) {
	head := 0
	for head < len(r.launches) && r.launches[head].k == nil {
		head++
	}
	at, size, err := stagingLayout(r.launches[:head])
	if err != nil {
		tb.Fatal(err)
	}
	r.staged = at
	r.exec.staging = unsafe.Pointer(unsafe.SliceData(make([]byte, max(size, 16))))
}

// TestReplayWalk: the walk over a resubmitted list finds its uploads and
// the rebound arguments whose buffer changed (their place in the exec's
// values and new pointer), and refuses a list that does not match the
// exec's structure.
func TestReplayWalk(t *testing.T) {
	rg := newHostRig(t, 6)
	outs := []*buffer{rg.bufs[4], rg.bufs[5]}
	const uploads, dispatches = 3, 20
	mk := func(o int) *runtime.CommandList {
		l := rg.list(uploads, dispatches, func(i int) *buffer {
			if i == 13 || i == 19 {
				return outs[o]
			}
			return rg.bufs[(i+2)%4]
		})
		l.Rebound = []runtime.ReboundArg{{Dispatch: 13, Arg: 2}, {Dispatch: 19, Arg: 2}}
		return l
	}
	r := rg.replay(t, mk(0))
	ups, binds, ok := r.walk(mk(0), nil, nil)
	if !ok || len(ups) != uploads || len(binds) != 0 {
		t.Fatalf("the same list: ok %v, %d uploads, binds %v", ok, len(ups), binds)
	}
	for i, u := range ups {
		if u.Kind != runtime.CmdUpload || len(u.Data) != 16+i {
			t.Fatalf("upload %d: %+v", i, u)
		}
	}
	// Dispatch d is launch uploads+d; its out argument is the third value.
	want := []rebind{{uploads + 13, r.exec.offs[uploads+13] + 16, outs[1].ptr + 512}, {uploads + 19, r.exec.offs[uploads+19] + 16, outs[1].ptr + 512}}
	l := mk(1)
	l.Passes[0].Commands = append([]runtime.Command{{Kind: runtime.CmdWaitFence}}, l.Passes[0].Commands...) // another fence wait
	if _, binds, ok = r.walk(l, nil, nil); !ok || fmt.Sprint(binds) != fmt.Sprint(want) {
		t.Fatalf("out rebound: ok %v, binds %v, want %v", ok, binds, want)
	}
	// A list built anew, with equal params in other objects, is the same.
	l = mk(0)
	for i := range l.Passes[1].Commands {
		if c := &l.Passes[1].Commands[i]; c.Kind == runtime.CmdDispatch {
			p := *rg.params
			c.Params = &p
		}
	}
	if _, binds, ok = r.walk(l, nil, nil); !ok || len(binds) != 0 {
		t.Fatalf("equal params in new objects: ok %v, binds %v", ok, binds)
	}
	for name, change := range map[string]func(l *runtime.CommandList){
		"kernel":      func(l *runtime.CommandList) { l.Passes[1].Commands[0].Kernel = &kernel{name: "other"} },
		"grid":        func(l *runtime.CommandList) { l.Passes[1].Commands[0].Grid.X = 2 },
		"group":       func(l *runtime.CommandList) { l.Passes[1].Commands[0].Group.X = 128 },
		"shared":      func(l *runtime.CommandList) { l.Passes[1].Commands[0].Shared = 16 },
		"params":      func(l *runtime.CommandList) { l.Passes[1].Commands[0].Params = &primitives.ElementwiseParams{} },
		"upload size": func(l *runtime.CommandList) { l.Passes[0].Commands[2].Data = make([]byte, 3) },
		"one dispatch less": func(l *runtime.CommandList) {
			p := &l.Passes[len(l.Passes)-1]
			p.Commands = p.Commands[:len(p.Commands)-2]
		},
		"one dispatch more": func(l *runtime.CommandList) {
			p := &l.Passes[len(l.Passes)-1]
			p.Commands = append(p.Commands, p.Commands[0])
		},
		"rebound past the dispatches": func(l *runtime.CommandList) {
			l.Rebound = append(l.Rebound, runtime.ReboundArg{Dispatch: dispatches, Arg: 0})
		},
		"rebound past the arguments": func(l *runtime.CommandList) { l.Rebound[1].Arg = 3 },
		"rebound to a released buffer": func(l *runtime.CommandList) {
			b := &buffer{ptr: 0x900000, n: 4096}
			b.released.Store(true)
			l.Passes[2].Commands[len(l.Passes[2].Commands)-2].Args[2].Buffer = b
		},
		"rebound to a span outside": func(l *runtime.CommandList) {
			l.Passes[2].Commands[len(l.Passes[2].Commands)-2].Args[2].Offset = 3500
		},
	} {
		l := mk(1)
		change(l)
		if _, _, ok := r.walk(l, nil, nil); ok {
			t.Errorf("a list with another %s walked as the exec's", name)
		}
	}
}

// BenchmarkReplayHostWork is the host's Go work per submitted list of a
// replayed decode step's shape (256 dispatches, 8 uploads, 2 rebound
// outputs) before any device call: "structure" is what the structure
// cache does (launches from the list, the key and its lookup, every
// launch's argument values, the nearest exec), "replay" the walk of an
// identified list. "staged" is the walk and the copy of the uploads into
// the exec's staging for the Qwen3-0.6B decode step's list (229
// dispatches, 7 uploads: positions, slots, block tables, sequence
// lengths, query offsets, sampling settings and keys; 2 rebound
// arguments) at batch 1 with 1,024 tokens (tables 80 blocks wide: 536
// bytes of uploads) and at batch 32 with 2,048 (144 blocks: 20 KB). No
// GPU needed.
func BenchmarkReplayHostWork(b *testing.B) {
	rg := newHostRig(b, 12)
	outs := []*buffer{rg.bufs[10], rg.bufs[11]}
	mk := func(o int) *runtime.CommandList {
		l := rg.list(8, 256, func(i int) *buffer {
			if i == 200 || i == 255 {
				return outs[o]
			}
			return rg.bufs[(i+2)%10]
		})
		l.Rebound = []runtime.ReboundArg{{Dispatch: 200, Arg: 2}, {Dispatch: 255, Arg: 2}}
		return l
	}
	lists := []*runtime.CommandList{mk(0), mk(1)}
	b.Run("structure", func(b *testing.B) {
		r := rg.replay(b, lists[0])
		keys := map[string]*graphKey{string(appendKey(nil, r.launches)): {execs: []*graphExec{r.exec}}}
		var key, vals []byte
		var offs []int
		for i := 0; i < b.N; i++ {
			ls := rg.q.dev.launchesOf(lists[i%2])
			key = appendKey(key[:0], ls)
			g := keys[string(key)]
			vals, offs = vals[:0], offs[:0]
			for j := range ls {
				offs = append(offs, len(vals))
				if ls[j].k != nil {
					vals, _, _ = rg.q.values(&ls[j], vals)
				}
			}
			offs = append(offs, len(vals))
			if e, _ := nearestExec(g, vals, offs); e == nil {
				b.Fatal("no exec")
			}
		}
	})
	b.Run("replay", func(b *testing.B) {
		r := rg.replay(b, lists[0])
		var ups []*runtime.Command
		var binds []rebind
		for i := 0; i < b.N; i++ {
			var ok bool
			if ups, binds, ok = r.walk(lists[i%2], ups[:0], binds[:0]); !ok {
				b.Fatal("the list does not match")
			}
		}
	})
	for _, c := range []struct {
		name         string
		batch, width int
	}{{"batch1", 1, 80}, {"batch32", 32, 144}} {
		b.Run("staged/"+c.name, func(b *testing.B) {
			s := c.batch
			uploads := []int{4 * s, 4 * s, 4 * s * c.width, 4 * s, 4 * (s + 1), 24 * s, 12 * s}
			mk := func(o int) *runtime.CommandList {
				l := rg.listSized(uploads, 229, func(i int) *buffer {
					if i == 0 || i == 228 {
						return outs[o]
					}
					return rg.bufs[(i+2)%10]
				})
				l.Rebound = []runtime.ReboundArg{{Dispatch: 0, Arg: 0}, {Dispatch: 228, Arg: 2}}
				return l
			}
			lists := []*runtime.CommandList{mk(0), mk(1)}
			r := rg.replay(b, lists[0])
			r.stagedInGo(b)
			var ups []*runtime.Command
			var binds []rebind
			for i := 0; b.Loop(); i++ {
				var ok bool
				if ups, binds, ok = r.walk(lists[i%2], ups[:0], binds[:0]); !ok {
					b.Fatal("the list does not match")
				}
				r.stageUploads(ups)
			}
		})
	}
}
