package model

import (
	"slices"
	"testing"

	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/runtime"
)

// TestReplayedDecodePDL runs decode steps replayed as CUDA graph execs
// with programmatic dependent launch off and on (cuda.Device.SetPDL): the
// logits are the same bit for bit, for float32 and for bfloat16 (the
// tensor-core GEMVs, the gated GEMV), and with PDL on the graphs were built
// with programmatic edges. Skips without a CUDA device, and where the
// device cannot do PDL (before Hopper, a driver before CUDA 12.3).
func TestReplayedDecodePDL(t *testing.T) {
	dev, err := loomtest.CUDA(t)
	if err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	was := dev.PDL()
	defer dev.SetPDL(was)
	// Wide enough that the GEMVs and the lm_head run many blocks, with
	// GQA heads and several KV blocks of context.
	cfg := Config{VocabSize: 1000, HiddenSize: 256, IntermediateSize: 608, NumLayers: 4, NumHeads: 4, NumKVHeads: 2, HeadDim: 64,
		MaxPositionEmbeddings: 1024, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: -1}
	const steps = 24
	run := func(t *testing.T, dt graph.DType, on bool) ([][]float32, cuda.GraphStats) {
		if err := dev.SetPDL(on); err != nil {
			t.Skip(err)
		}
		rt, err := runtime.New(dev, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		before := dev.GraphStats()
		got, _ := decodeLoop(t, rt, cfg, dt, steps)
		after := dev.GraphStats()
		return got, cuda.GraphStats{Replays: after.Replays - before.Replays, Failures: after.Failures - before.Failures,
			Programmatic: after.Programmatic - before.Programmatic}
	}
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			want, off := run(t, dt, false)
			got, on := run(t, dt, true)
			t.Logf("PDL off: %+v; on: %+v", off, on)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Fatalf("step %d: logits with PDL differ from those without", i)
				}
			}
			if off.Programmatic != 0 || on.Programmatic == 0 || on.Replays == 0 || on.Failures != 0 {
				t.Errorf("PDL off: %+v; on: %+v; want programmatic edges (and replays, no failures) only with PDL on", off, on)
			}
		})
	}
}
