// Package loomtest holds what Loom's tests share: the devices every op is
// checked on, seeded random data, and comparison against float64 references.
package loomtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/runtime"
)

// Target is a runtime to test on.
type Target struct {
	Name string
	RT   *runtime.Runtime
	// Exact is true for the CPU targets: they run the same kernels, whose
	// results do not depend on the schedule, so they agree bit for bit. A
	// GPU target computes with its own kernels (other rounding, other NaN
	// payloads) and agrees within tolerances.
	Exact bool
	cpu   *cpu.Device // the checking device, if any
}

// Targets returns the runtimes every op test runs on: the plain CPU device,
// the checking device running concurrently with one dispatch per command
// buffer, the checking device's adversarial scheduler with a few dispatches
// per command buffer and pass, and any GPU device this machine has (see
// gpuTargets).
func Targets(t testing.TB) []Target {
	t.Helper()
	mk := func(name string, dev runtime.Device, opts runtime.Options, c *cpu.Device) Target {
		rt, err := runtime.New(dev, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return Target{Name: name, RT: rt, Exact: true, cpu: c}
	}
	plain := cpu.New(cpu.Options{})
	check := cpu.New(cpu.Options{Check: true})
	adv := cpu.New(cpu.Options{Check: true, Seed: 7})
	ts := []Target{
		mk("cpu", plain, runtime.Options{}, nil),
		mk("cpu-check", check, runtime.Options{DispatchesPerCommandBuffer: 1}, check),
		mk("cpu-adversarial", adv, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2}, adv),
	}
	return append(ts, gpuTargets(t)...)
}

// Eval evaluates outs and fails the test on an error or a hazard.
func (tg Target) Eval(t testing.TB, outs ...*graph.Array) {
	t.Helper()
	if err := tg.RT.Eval(outs...); err != nil {
		t.Fatalf("%s: eval: %v", tg.Name, err)
	}
	tg.NoHazards(t)
}

// NoHazards fails the test if the checking device found a hazard.
func (tg Target) NoHazards(t testing.TB) {
	t.Helper()
	if tg.cpu == nil {
		return
	}
	if hz := tg.cpu.Hazards(); len(hz) > 0 {
		t.Fatalf("%s: %d hazards, first: %v", tg.Name, len(hz), hz[0])
	}
}

// Rand returns a deterministic source for the given seed.
func Rand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// Float32s returns n values uniform in [lo, hi).
func Float32s(r *rand.Rand, n int, lo, hi float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = lo + (hi-lo)*r.Float32()
	}
	return out
}

// Round returns the values rounded to dtype dt, as float64: the exact
// inputs a kernel sees after a float32 slice is stored as dt.
func Round(dt graph.DType, v []float32) []float64 {
	b := make([]byte, len(v)*dt.Size())
	graph.PutFloat32s(dt, b, v)
	return graph.DecodeFloat64s(dt, b)
}

// Tolerance is the absolute and relative tolerance for results stored as dt:
// float32 (1e-5, 1e-5), float16 (1e-3, 1e-3), bfloat16 (8e-3, 8e-3).
func Tolerance(dt graph.DType) (atol, rtol float64) {
	switch dt {
	case graph.Float16:
		return 1e-3, 1e-3
	case graph.BFloat16:
		return 8e-3, 8e-3
	}
	return 1e-5, 1e-5
}

// Close fails the test unless |got−want| ≤ atol + rtol·|want| everywhere. NaN
// matches only NaN.
func Close(t testing.TB, what string, got, want []float64, atol, rtol float64) {
	t.Helper()
	if err := CloseErr(got, want, atol, rtol); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// CloseErr is Close as an error.
func CloseErr(got, want []float64, atol, rtol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	bad, worst, wi := 0, 0.0, -1
	for i := range got {
		g, w := got[i], want[i]
		if math.IsNaN(w) || math.IsNaN(g) {
			if math.IsNaN(w) != math.IsNaN(g) {
				return fmt.Errorf("element %d: got %v, want %v", i, g, w)
			}
			continue
		}
		if math.IsInf(w, 0) && g == w {
			continue
		}
		d := math.Abs(g - w)
		if d > atol+rtol*math.Abs(w) {
			bad++
			if d > worst {
				worst, wi = d, i
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d elements out of tolerance (atol %g, rtol %g); worst element %d: got %v, want %v",
			bad, len(got), atol, rtol, wi, got[wi], want[wi])
	}
	return nil
}
