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
	"github.com/loomrt/loom/internal/mtlfake"
	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/metal/mslcheck"
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
	cpu   *cpu.Device     // the checking device, if any
	fake  *mtlfake.Device // the fake under the Metal device, if any
}

// Targets returns the runtimes every op test runs on: the plain CPU device,
// the checking device running concurrently with one dispatch per command
// buffer, the checking device's adversarial scheduler with a few dispatches
// per command buffer and pass, the Metal device over the recording fake of
// its Objective-C layer (metal-fake: see MetalFake), and any GPU device this
// machine has (see gpuTargets).
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
	if fake, ok := MetalFake(t, mtlfake.Options{Seed: 11}); ok {
		ts = append(ts, mk("metal-fake", fake.dev, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2}, nil))
		ts[len(ts)-1].Exact, ts[len(ts)-1].fake = false, fake.Fake
	}
	return append(ts, gpuTargets(t)...)
}

// Fake is Loom's Metal device over a recording fake of its Objective-C
// layer (internal/mtlfake): the device's own Go runs, every call it makes
// is checked against Metal's ordering rules by the checking device's
// happens-before model, and the dispatches run the CPU kernels. It is not
// Exact: the Metal device's caps steer lowering (split-KV, matmul paths)
// unlike the CPU's.
type Fake struct {
	Fake *mtlfake.Device
	dev  *metal.Device
}

// MetalFake returns a Metal device on a new fake, closed when the test
// ends, or false when this machine lacks g++ (the fake reads the MSL
// kernels' parameters through it).
func MetalFake(t testing.TB, opts mtlfake.Options) (Fake, bool) {
	t.Helper()
	if _, err := mslcheck.Compiler(); err != nil {
		t.Logf("no metal-fake target: %v", err)
		return Fake{}, false
	}
	fake := mtlfake.New(opts)
	t.Cleanup(fake.Close)
	dev, err := metal.New(fake)
	if err != nil {
		t.Fatalf("metal on the fake: %v", err)
	}
	return Fake{fake, dev}, true
}

// Device is the Metal device.
func (f Fake) Device() *metal.Device { return f.dev }

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
	if tg.fake != nil {
		if hz := tg.fake.Hazards(); len(hz) > 0 {
			t.Fatalf("%s: %d hazards, first: %v", tg.Name, len(hz), hz[0])
		}
		if v := tg.fake.Violations(); len(v) > 0 {
			t.Fatalf("%s: %d calls against Metal's rules, first: %s", tg.Name, len(v), v[0])
		}
	}
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
