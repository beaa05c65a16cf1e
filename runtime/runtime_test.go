package runtime_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// decodeSteps runs a paged-cache-shaped loop: each step writes a new row
// into every layer's cache in place and then reads the cache, with no host
// wait between steps. It returns each step's reads and the expected values.
func decodeSteps(t *testing.T, rt *runtime.Runtime, layers, steps int) (got, want [][]float32) {
	t.Helper()
	const rows, cols = 16, 8
	r := loomtest.Rand(11)
	caches := make([]*graph.Array, layers)
	host := make([][]float32, layers)
	for l := range caches {
		host[l] = loomtest.Float32s(r, rows*cols, -1, 1)
		caches[l] = graph.FromFloat32s(append([]float32(nil), host[l]...), rows, cols)
	}
	var reads []*graph.Array
	var pend []*runtime.Pending
	for s := 0; s < steps; s++ {
		var outs []*graph.Array
		slot := int32(s % rows)
		for l := range caches {
			row := loomtest.Float32s(r, cols, -1, 1)
			copy(host[l][int(slot)*cols:], row)
			caches[l] = ops.Apply(tScatter{scratch: l%2 == 1}, caches[l], graph.FromInt32s([]int32{slot, -1}),
				graph.FromFloat32s(append(row, row...), 2, cols))[0]
			sum := ops.Apply(tReadSum{}, caches[l])[0]
			outs = append(outs, sum)
			reads = append(reads, sum)
			exp := make([]float32, cols)
			for j := range cols {
				for i := range rows {
					exp[j] += host[l][i*cols+j]
				}
			}
			want = append(want, exp)
		}
		p, err := rt.EvalAsync(append(outs, caches...)...)
		if err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
		if st := p.Stats(); st.Donations != layers || st.DonationsRefused != 0 {
			t.Fatalf("step %d: %d donations, %d refused; want every cache updated in place", s, st.Donations, st.DonationsRefused)
		}
		pend = append(pend, p)
	}
	for _, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range reads {
		v, err := a.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	return got, want
}

// TestPipelinedCache runs several in-place cache updates and reads through
// EvalAsync, the host never waiting between steps, under the checking device
// with every schedule: zero hazards and the right numbers.
func TestPipelinedCache(t *testing.T) {
	for _, n := range []int{1, 3, 40, -1} {
		for _, co := range []cpu.Options{{Check: true}, {Check: true, Lazy: true, Seed: 9}, {Check: true, Seed: 4}} {
			t.Run(fmt.Sprintf("N=%d/%+v", n, co), func(t *testing.T) {
				dev := cpu.New(co)
				rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: n})
				defer func() { rt.Close(); dev.Close() }()
				got, want := decodeSteps(t, rt, 4, 6)
				if hz := dev.Hazards(); len(hz) > 0 {
					t.Fatalf("%d hazards; first: %v", len(hz), hz[0])
				}
				for i := range want {
					if err := loomtest.CloseErr(f64(got[i]), f64(want[i]), 1e-5, 1e-5); err != nil {
						t.Fatalf("read %d: %v", i, err)
					}
				}
			})
		}
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestOneHostWaitPerStep: a 28-layer step is one Eval with exactly one host
// wait, however many command buffers it spans (planned) or as one command
// buffer (replayed).
func TestOneHostWaitPerStep(t *testing.T) {
	dev := cpu.New(cpu.Options{})
	rt, _ := runtime.New(dev, runtime.Options{})
	defer rt.Close()
	r := loomtest.Rand(5)
	caches := make([]*graph.Array, 28)
	for l := range caches {
		caches[l] = graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	}
	x := graph.FromFloat32s(loomtest.Float32s(r, 8, -1, 1), 1, 8)
	w := graph.FromFloat32s(loomtest.Float32s(r, 64, -1, 1), 8, 8)
	for step := 0; step < 3; step++ {
		h := x
		for l := range caches {
			h = ops.Apply(tMatMul{}, h, w)[0]
			caches[l] = ops.Apply(tScatter{}, caches[l], graph.FromInt32s([]int32{int32(step)}), h)[0]
			h = ops.Add(h, ops.Apply(tReadSum{}, caches[l])[0])
		}
		if err := rt.Eval(append([]*graph.Array{h}, caches...)...); err != nil {
			t.Fatal(err)
		}
		st := rt.LastStats()
		if st.HostWaits != 1 || st.CacheHits == 0 && st.CommandBuffers < 3 { // a replay is one command buffer
			t.Fatalf("step %d: %d host waits over %d command buffers; want exactly 1", step, st.HostWaits, st.CommandBuffers)
		}
	}
}

// TestEvalErrorsLoseNothing: an Eval that fails (here: the memory limit)
// changes nothing already computed; the in-place update it would have done
// is not applied, and the cache is still readable and usable.
func TestEvalErrorsLoseNothing(t *testing.T) {
	dev := cpu.New(cpu.Options{})
	rt, _ := runtime.New(dev, runtime.Options{MemoryLimit: 4096})
	defer rt.Close()
	cache := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(1), 64, -1, 1), 8, 8)
	if err := rt.Eval(cache); err != nil {
		t.Fatal(err)
	}
	before, _ := cache.Float32s()
	big := graph.Full(graph.Float32, 1, 64, 64) // 16 KiB: over the limit
	c2 := ops.Apply(tScatter{}, cache, graph.FromInt32s([]int32{0}), graph.Full(graph.Float32, 7, 1, 8))[0]
	err := rt.Eval(c2, ops.Add(big, big))
	if err == nil || !strings.Contains(err.Error(), "memory limit") {
		t.Fatalf("got %v, want a memory-limit error", err)
	}
	if cache.Overwritten() {
		t.Fatal("the failed Eval marked the cache overwritten")
	}
	after, err := cache.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("the failed Eval changed the cache")
	}
	// The same update without the oversized array succeeds.
	if err := rt.Eval(c2); err != nil {
		t.Fatal(err)
	}
	v, _ := c2.Float32s()
	if v[0] != 7 || v[8] != before[8] {
		t.Fatalf("update after the failure: row 0 = %v, row 1 = %v", v[:8], v[8:16])
	}
}

func TestDonatedArrayErrors(t *testing.T) {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt.Close()
	cache := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(1), 64, -1, 1), 8, 8)
	reader := ops.Apply(tReadSum{}, cache)[0] // built before the donation: allowed
	c2 := ops.Apply(tScatter{}, cache, graph.FromInt32s([]int32{1}), graph.Full(graph.Float32, 3, 1, 8))[0]
	late := ops.Add(cache, cache)
	if err := late.Err(); err == nil || !strings.Contains(err.Error(), "donated to test_scatter") || !strings.Contains(err.Error(), "runtime_test.go:") {
		t.Fatalf("use after donation: %v", err)
	}
	if err := rt.Eval(c2); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Float32s(); err == nil || !strings.Contains(err.Error(), "overwritten") {
		t.Fatalf("read of a donated array: %v", err)
	}
	if err := rt.Eval(reader); err == nil || !strings.Contains(err.Error(), "overwritten") {
		t.Fatalf("eval of a reader of an overwritten array: %v", err)
	}
}

func TestDonationOrdersEarlierReaders(t *testing.T) {
	for _, n := range []int{1, 40} {
		dev := cpu.New(cpu.Options{Check: true, Lazy: true, Seed: 3})
		rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: n})
		cache := graph.FromFloat32s([]float32{1, 1, 1, 1, 2, 2, 2, 2}, 2, 4)
		sum := ops.Apply(tReadSum{}, cache)[0] // reads the old value
		c2 := ops.Apply(tScatter{}, cache, graph.FromInt32s([]int32{0}), graph.Full(graph.Float32, 5, 1, 4))[0]
		sum2 := ops.Apply(tReadSum{}, c2)[0]
		if err := rt.Eval(sum2, sum); err != nil {
			t.Fatal(err)
		}
		if st := rt.LastStats(); st.Donations != 1 {
			t.Fatalf("N=%d: %d donations, want 1", n, st.Donations)
		}
		a, _ := sum.Float32s()
		b, _ := sum2.Float32s()
		if a[0] != 3 || b[0] != 7 {
			t.Fatalf("N=%d: read before the in-place write = %v, after = %v", n, a, b)
		}
		if hz := dev.Hazards(); len(hz) > 0 {
			t.Fatal(hz[0])
		}
		rt.Close()
		dev.Close()
	}
}

func TestRefusedDonationCopies(t *testing.T) {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt.Close()
	x := graph.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)
	// y is wanted as an output of the very Eval that updates it in place: the
	// update goes to a copy, and y keeps its value.
	y := ops.Add(x, x)
	y2 := ops.Apply(tScatter{}, y, graph.FromInt32s([]int32{1}), graph.Full(graph.Float32, 9, 1, 2))[0]
	if err := rt.Eval(y, y2); err != nil {
		t.Fatal(err)
	}
	if st := rt.LastStats(); st.Donations != 0 || st.DonationsRefused != 1 {
		t.Fatalf("%d donations, %d refused; want 0 and 1", st.Donations, st.DonationsRefused)
	}
	a, _ := y.Float32s()
	b, _ := y2.Float32s()
	if fmt.Sprint(a) != "[2 4 6 8]" || fmt.Sprint(b) != "[2 4 9 9]" {
		t.Fatalf("y = %v, updated copy = %v", a, b)
	}
	// The same array as destination and as rows of one in-place update: the
	// update cannot take the buffer it also reads.
	z := ops.Add(x, x)
	z2 := ops.Apply(tScatter{}, z, graph.FromInt32s([]int32{1, 0}), z)[0]
	if err := rt.Eval(z2); err != nil {
		t.Fatal(err)
	}
	if st := rt.LastStats(); st.DonationsRefused != 1 {
		t.Fatalf("%d refused, want 1", st.DonationsRefused)
	}
	if v, _ := z2.Float32s(); fmt.Sprint(v) != "[6 8 2 4]" {
		t.Fatalf("rows swapped in place = %v", v)
	}
}

func TestKernelErrorIsReported(t *testing.T) {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt.Close()
	c := graph.Full(graph.Float32, 0, 4, 2)
	c2 := ops.Apply(tScatter{}, c, graph.FromInt32s([]int32{9}), graph.Full(graph.Float32, 1, 1, 2))[0]
	err := rt.Eval(c2)
	if err == nil || !strings.Contains(err.Error(), "index 9") || !strings.Contains(err.Error(), "test_scatter") {
		t.Fatalf("got %v", err)
	}
	if _, rerr := c2.Float32s(); rerr == nil {
		t.Fatal("reading the result of a failed Eval should fail")
	}
}

func TestForeignRuntime(t *testing.T) {
	rt1, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	rt2, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt1.Close()
	defer rt2.Close()
	a := graph.FromFloat32s([]float32{1})
	if err := rt1.Eval(a); err != nil {
		t.Fatal(err)
	}
	err := rt2.Eval(ops.Add(a, a))
	var ge *graph.Error
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "another runtime") {
		t.Fatalf("got %v", err)
	}
}
