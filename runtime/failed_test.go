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

// TestFailedEval pins down what an Eval whose kernel fails leaves behind:
// its outputs carry the error, named at the call site of the failing op;
// everything built on them fails with it, at build time or at Eval; the
// donated input of the failed in-place update stays consumed; and nothing
// computed before is lost.
func TestFailedEval(t *testing.T) {
	for _, n := range []int{1, 40} {
		for _, co := range []cpu.Options{{}, {Check: true, Lazy: true, Seed: 2}} {
			t.Run(fmt.Sprintf("N=%d/%+v", n, co), func(t *testing.T) {
				dev := cpu.New(co)
				rt, _ := runtime.New(dev, runtime.Options{DispatchesPerCommandBuffer: n})
				defer func() { rt.Close(); dev.Close() }()
				x := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(4), 8, -1, 1), 4, 2)
				kept := ops.Add(x, x)
				cache := graph.Full(graph.Float32, 1, 4, 2)
				if err := rt.Eval(kept, cache); err != nil {
					t.Fatal(err)
				}
				want, _ := kept.Float32s()

				h := ops.Add(kept, x)
				bad, at := ops.Apply(tScatter{}, cache, graph.FromInt32s([]int32{9}), graph.Full(graph.Float32, 5, 1, 2))[0], line() // row 9 of 4: fails in the kernel
				sum := ops.Apply(tReadSum{}, bad)[0]
				err := rt.Eval(sum, ops.Add(h, h))
				var ge *graph.Error
				if !errors.As(err, &ge) || ge.Site != fmt.Sprintf("runtime/failed_test.go:%d", at) || ge.Op != "test_scatter" || !strings.Contains(err.Error(), "index 9") {
					t.Fatalf("Eval error %v does not name test_scatter at line %d", err, at)
				}
				var de *runtime.DispatchError
				if !errors.As(err, &de) {
					t.Errorf("Eval error %v does not wrap a runtime.DispatchError", err)
				}
				for name, a := range map[string]*graph.Array{"failed output": sum, "failed in-place result": bad} {
					if a.Err() == nil || a.Err().Error() != err.Error() {
						t.Errorf("%s: Err() = %v, want the Eval's error", name, a.Err())
					}
					if _, rerr := a.Float32s(); rerr == nil {
						t.Errorf("%s: reading it succeeded", name)
					}
				}
				// Built afterwards on a failed array: fails at build time with
				// the same error, and Eval says so too.
				for _, a := range []*graph.Array{
					ops.Neg(sum),
					ops.Apply(tScatter{}, bad, graph.FromInt32s([]int32{0}), graph.Full(graph.Float32, 2, 1, 2))[0],
				} {
					if a.Err() == nil || a.Err().Error() != err.Error() {
						t.Errorf("built on a failed array: Err() = %v", a.Err())
					}
					if eerr := rt.Eval(a); eerr == nil {
						t.Error("Eval of a graph built on a failed array succeeded")
					}
				}
				// The donated cache stays consumed; its error says the update failed.
				if _, rerr := cache.Float32s(); !errors.Is(rerr, graph.ErrDonated) || !strings.Contains(rerr.Error(), "failed") {
					t.Errorf("read of the donated input of the failed update: %v", rerr)
				}
				// Nothing computed before is lost, and the runtime keeps working.
				if got, rerr := kept.Float32s(); rerr != nil || fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("array computed before the failed Eval: %v, %v", got, rerr)
				}
				again := ops.Add(kept, kept)
				if err := rt.Eval(again); err != nil {
					t.Fatal(err)
				}
				if got, _ := again.Float32s(); got[3] != 2*want[3] {
					t.Fatalf("Eval after the failure: %v", got)
				}

				// Pipelined: a graph built on the failing output and submitted
				// before anyone has seen the failure fails with it too.
				cache2 := graph.Full(graph.Float32, 1, 4, 2)
				if err := rt.Eval(cache2); err != nil {
					t.Fatal(err)
				}
				bad2 := ops.Apply(tScatter{}, cache2, graph.FromInt32s([]int32{7}), graph.Full(graph.Float32, 3, 1, 2))[0]
				p1, err := rt.EvalAsync(bad2)
				if err != nil {
					t.Fatal(err)
				}
				after := ops.Apply(tReadSum{}, bad2)[0]
				p2, err2 := rt.EvalAsync(after)
				if err2 == nil {
					err2 = p2.Wait()
				}
				err1 := p1.Wait()
				if err1 == nil || err2 == nil || err2.Error() != err1.Error() {
					t.Fatalf("pipelined: first Eval %v, the one built on it %v; want the same error", err1, err2)
				}
				if _, rerr := after.Float32s(); rerr == nil {
					t.Fatal("pipelined: reading the result built on a failed array succeeded")
				}
				if hz := dev.Hazards(); len(hz) > 0 {
					t.Fatal(hz[0])
				}
			})
		}
	}
}
