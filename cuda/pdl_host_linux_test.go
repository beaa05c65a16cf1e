package cuda

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
)

// The graphs the device builds, without a GPU: a driver whose graph
// functions are Go callbacks that record the nodes and edges, so that the
// device's own buildGraph runs as it does on a GPU.

// fakeGraph is what the fake driver recorded: nodes (handle i+1 is
// nodes[i]) and edges.
type fakeGraph struct {
	nodes []fakeNode
	edges []fakeEdge
	host  [][]byte // memory handed out as pinned host memory, kept alive
}

type fakeNode struct {
	kind string  // "memset" or "kernel"
	fn   uintptr // a kernel node's function
}

type fakeEdge struct {
	from, to int // node indices
	data     graphEdgeData
}

var (
	fakeOnce sync.Once
	fakeDrv  *driver
	fakeCur  *fakeGraph // the graph the callbacks record into; tests using it are not parallel
)

// at is the address p, a pointer to Go memory that the device passed to
// the fake driver (alive and pinned for the call), as an unsafe.Pointer.
// The uintptr's bits are reinterpreted rather than converted: a
// conversion from a uintptr into the Go heap fails -race's pointer checks.
func at(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// word is the uintptr at address p (a pointer the device passed).
func word(p uintptr) *uintptr { return (*uintptr)(at(p)) }

func (g *fakeGraph) addNode(n fakeNode, out, deps, ndeps uintptr) {
	g.nodes = append(g.nodes, n)
	id := len(g.nodes)
	for i := range ndeps {
		g.edges = append(g.edges, fakeEdge{from: int(*word(deps + 8*i)) - 1, to: id - 1})
	}
	*word(out) = uintptr(id)
}

// fakeDriver returns the driver whose graph and memory functions record
// into fakeCur. Callbacks are never released, so they are made once.
func fakeDriver() *driver {
	fakeOnce.Do(func() {
		ok := func(f any) uintptr { return purego.NewCallback(f) }
		fakeDrv = &driver{
			graphCreate: cfunc{"cuGraphCreate", ok(func(out, flags uintptr) uintptr { *word(out) = 1; return 0 })},
			graphAddMemsetNode: cfunc{"cuGraphAddMemsetNode", ok(func(out, graph, deps, ndeps, params, ctx uintptr) uintptr {
				fakeCur.addNode(fakeNode{kind: "memset"}, out, deps, ndeps)
				return 0
			})},
			graphAddKernelNode: cfunc{"cuGraphAddKernelNode", ok(func(out, graph, deps, ndeps, params uintptr) uintptr {
				p := (*kernelNodeParams)(at(params))
				fakeCur.addNode(fakeNode{kind: "kernel", fn: p.fn}, out, deps, ndeps)
				return 0
			})},
			graphAddDependencies: cfunc{"cuGraphAddDependencies_v2", ok(func(graph, from, to, data, n uintptr) uintptr {
				for i := range n {
					e := fakeEdge{from: int(*word(from + 8*i)) - 1, to: int(*word(to + 8*i)) - 1}
					if data != 0 {
						e.data = *(*graphEdgeData)(at(data + 8*i))
					}
					fakeCur.edges = append(fakeCur.edges, e)
				}
				return 0
			})},
			graphInstantiate: cfunc{"cuGraphInstantiateWithFlags", ok(func(out, graph, flags uintptr) uintptr { *word(out) = 1; return 0 })},
			graphDestroy:     cfunc{"cuGraphDestroy", ok(func(graph uintptr) uintptr { return 0 })},
			graphExecDestroy: cfunc{"cuGraphExecDestroy", ok(func(exec uintptr) uintptr { return 0 })},
			memAlloc:         cfunc{"cuMemAlloc_v2", ok(func(out, size uintptr) uintptr { *word(out) = 0xd000000; return 0 })},
			memAllocHost: cfunc{"cuMemAllocHost_v2", ok(func(out, size uintptr) uintptr {
				b := make([]byte, size+16)
				fakeCur.host = append(fakeCur.host, b)
				*word(out) = (uintptr(unsafe.Pointer(&b[0])) + 15) &^ 15
				return 0
			})},
			memFree:     cfunc{"cuMemFree_v2", ok(func(p uintptr) uintptr { return 0 })},
			memFreeHost: cfunc{"cuMemFreeHost", ok(func(p uintptr) uintptr { return 0 })},
		}
	})
	return fakeDrv
}

// pdlRig is a device on the fake driver with three kernels at made-up
// function addresses: copy_bytes and add_f32 from the catalog, and a user
// kernel (compiled at first use: kernel.user).
type pdlRig struct {
	d              *Device
	q              *queue
	copyK, add, uk *kernel
	bufs           []*buffer
}

func newPDLRig(t *testing.T) *pdlRig {
	t.Helper()
	arena := make([]uint64, arenaBytes/8)
	d := &Device{drv: fakeDriver(), caps: primitives.Caps{MaxThreadsPerGroup: 1024}, maxGrid: [3]int{1 << 30, 65535, 65535},
		unified: true, arena: unsafe.Pointer(&arena[0]), kernels: map[string]*kernel{}}
	rg := &pdlRig{d: d, q: &queue{dev: d}}
	rg.copyK, rg.add = catalogKernel(t, primitives.CopyKernel, 0x3000), catalogKernel(t, "add_f32", 0x1000)
	rg.uk = catalogKernel(t, "add_f32", 0x2000)
	rg.uk.user = true
	d.kernels[primitives.CopyKernel] = rg.copyK
	for i := range 4 {
		rg.bufs = append(rg.bufs, &buffer{dev: d, ptr: uint64(0x10000 * (i + 1)), n: 4096})
	}
	fakeCur = &fakeGraph{}
	t.Cleanup(func() { fakeCur = nil })
	return rg
}

// list is an identified list: two uploads, then add, the user kernel, add,
// an add without work (grid 0: no node), add.
func (rg *pdlRig) list() *runtime.CommandList {
	l := &runtime.CommandList{Replay: 1}
	l.NewPass()
	l.Upload(rg.bufs[0], 0, make([]byte, 64))
	l.Upload(rg.bufs[1], 0, make([]byte, 32))
	p, _ := primitives.NewElementwiseParams([]int{256}, []int{256}, []int{256})
	one, none := primitives.Dim3{X: 1, Y: 1, Z: 1}, primitives.Dim3{X: 0, Y: 1, Z: 1}
	for i, k := range []*kernel{rg.add, rg.uk, rg.add, rg.add, rg.add} {
		grid := one
		if i == 3 {
			grid = none
		}
		a, b, o := rg.bufs[i%4], rg.bufs[(i+1)%4], rg.bufs[(i+2)%4]
		l.Dispatch(k, grid, primitives.Dim3{X: 256, Y: 1, Z: 1},
			[]runtime.BufferArg{{Buffer: a, Size: 1024, Name: "a"}, {Buffer: b, Size: 1024, Name: "b"}, {Buffer: o, Size: 1024, Name: "out"}}, p, 0)
		l.Barrier()
	}
	return l
}

// chain describes the recorded graph as its nodes in order with the edge
// into each: "memset", then "<kernel> <-type" for a kernel node after the
// node before it, type "full" or "programmatic".
func (g *fakeGraph) chain(t *testing.T, names map[uintptr]string) string {
	t.Helper()
	into := make([][]fakeEdge, len(g.nodes))
	for _, e := range g.edges {
		into[e.to] = append(into[e.to], e)
	}
	var parts []string
	for i, n := range g.nodes {
		desc := n.kind
		if n.kind == "kernel" {
			desc = names[n.fn]
		}
		for _, e := range into[i] {
			if e.from != i-1 {
				t.Errorf("node %d (%s) depends on node %d, not the node before it", i, desc, e.from)
			}
			switch e.data {
			case graphEdgeData{}:
				desc += " <-full"
			case graphEdgeData{fromPort: graphPortProgrammatic, typ: graphEdgeProgrammatic}:
				desc += " <-programmatic"
			default:
				t.Errorf("node %d (%s): edge data %+v", i, desc, e.data)
			}
		}
		if len(into[i]) != min(i, 1) {
			t.Errorf("node %d (%s) has %d edges into it, want %d", i, desc, len(into[i]), min(i, 1))
		}
		parts = append(parts, desc)
	}
	return strings.Join(parts, ", ")
}

// TestGraphEdgesPDL builds a replayed list's graph on the fake driver with
// PDL off and on: on, every kernel node that follows a kernel node depends
// on it programmatically, except the user kernel's (which does not wait);
// the node after the status memset, and every node with PDL off, depends
// on the one before by an ordinary edge. The uploads are copy_bytes nodes
// and the status copy ends the chain.
func TestGraphEdgesPDL(t *testing.T) {
	names := map[uintptr]string{0x1000: "add", 0x2000: "user", 0x3000: "copy"}
	for _, c := range []struct {
		pdl  bool
		want string
	}{
		{false, "memset, copy <-full, copy <-full, add <-full, user <-full, add <-full, add <-full, copy <-full"},
		{true, "memset, copy <-full, copy <-programmatic, add <-programmatic, user <-full, add <-programmatic, add <-programmatic, copy <-programmatic"},
	} {
		t.Run(fmt.Sprintf("pdl=%v", c.pdl), func(t *testing.T) {
			rg := newPDLRig(t)
			rg.d.pdl.Store(c.pdl)
			r := rg.q.newReplay(rg.list())
			if r.exec == nil {
				t.Fatalf("no exec built (failures %d)", rg.d.GraphStats().Failures)
			}
			if got := fakeCur.chain(t, names); got != c.want {
				t.Errorf("graph:\n got %s\nwant %s", got, c.want)
			}
			if got, want := rg.d.GraphStats().Programmatic, int64(strings.Count(c.want, "programmatic")); got != want {
				t.Errorf("GraphStats.Programmatic = %d, want %d", got, want)
			}
		})
	}
}

// TestProgrammaticEdgeRule: a programmatic edge needs PDL on, a kernel
// node before, and a catalog kernel after.
func TestProgrammaticEdgeRule(t *testing.T) {
	cat, user := &kernel{name: "add_f32"}, &kernel{name: "mine", user: true}
	for _, c := range []struct {
		pdl, afterKernel bool
		k                *kernel
		want             bool
	}{
		{true, true, cat, true},
		{false, true, cat, false},
		{true, false, cat, false},
		{true, true, user, false},
		{false, false, user, false},
	} {
		if got := programmatic(c.pdl, c.afterKernel, c.k); got != c.want {
			t.Errorf("programmatic(pdl %v, after a kernel %v, %s) = %v, want %v", c.pdl, c.afterKernel, c.k.name, got, c.want)
		}
	}
}

// TestSetPDLUnsupported: turning PDL on says why it is unsupported (before
// Hopper, without cuGraphAddDependencies_v2, without graphs) and leaves it
// off; turning it off always works.
func TestSetPDLUnsupported(t *testing.T) {
	withDeps := fakeDriver()
	noDeps := *withDeps
	noDeps.graphAddDependencies = cfunc{}
	noGraphs := *withDeps
	noGraphs.graphErr = fmt.Errorf("cuda: libcuda.so.1 has no cuGraphCreate")
	for _, c := range []struct {
		name  string
		drv   *driver
		major int
		want  string
	}{
		{"hopper", withDeps, 9, ""},
		{"blackwell", withDeps, 10, ""},
		{"ampere", withDeps, 8, "unsupported on compute capability 80"},
		{"old driver", &noDeps, 9, "unsupported by this driver: libcuda.so.1 has no cuGraphAddDependencies_v2"},
		{"no graphs", &noGraphs, 9, "unsupported without CUDA graphs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &Device{drv: c.drv, major: c.major, arch: fmt.Sprintf("%d0", c.major), name: "test GPU"}
			err := d.SetPDL(true)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("SetPDL(true): %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("SetPDL(true) = %v, want an error saying %q", err, c.want)
			}
			if d.pdl.Load() != (c.want == "") {
				t.Errorf("after SetPDL(true): on %v", d.pdl.Load())
			}
			if err := d.SetPDL(false); err != nil || d.pdl.Load() {
				t.Errorf("SetPDL(false) = %v, on %v", err, d.pdl.Load())
			}
		})
	}
}

// catalogKernel is the catalog's kernel name as the device makes it, its
// function the fake address fn.
func catalogKernel(t *testing.T, name string, fn uintptr) *kernel {
	t.Helper()
	spec, ok := primitives.LookupKernel(name)
	if !ok {
		t.Fatalf("no %s in the catalog", name)
	}
	k, err := newKernel(spec, fn)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
