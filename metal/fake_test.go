package metal_test

import (
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/internal/mtlfake"
	"github.com/loomrt/loom/metal"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

func TestFakeSmoke(t *testing.T) {
	fake := mtlfake.New(mtlfake.Options{Seed: 3, Log: true})
	defer fake.Close()
	dev, err := metal.New(fake)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: 3, DispatchesPerPass: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	r := loomtest.Rand(1)
	const n = 1001
	a, b := loomtest.Float32s(r, n, -1, 1), loomtest.Float32s(r, n, -1, 1)
	x := graph.FromFloat32s(a, n)
	y := graph.FromFloat32s(b, n)
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(a[i])
	}
	for range 10 {
		x = ops.Add(x, y)
		for i := range want {
			want[i] = float64(float32(want[i] + float64(b[i])))
		}
	}
	if err := rt.Eval(x); err != nil {
		t.Fatal(err)
	}
	got, err := x.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	loomtest.Close(t, "chain of adds", got, want, 0, 0)
	t.Log(len(fake.Calls()), fake.Hazards(), fake.Violations())
	for _, c := range fake.Calls()[:40] {
		t.Log(c)
	}
}
