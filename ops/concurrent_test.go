package ops_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// TestConcurrentEvalsShareConstants: goroutines build ops that read the
// host bytes of shared constants (GatherRows indices, the KVWrite slot
// mapping, the PagedAttention metadata) while another goroutine's Eval
// uploads the same constants. Run under -race: no data race, and every
// result right.
func TestConcurrentEvalsShareConstants(t *testing.T) {
	rt, _ := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	defer rt.Close()
	const blocks, bs, hs = 2, 8, 64
	r := loomtest.Rand(3)
	tableVals := loomtest.Float32s(r, 5*3, -1, 1)
	table := graph.FromFloat32s(tableVals, 5, 3)
	for round := range 20 {
		idx := graph.FromInt32s([]int32{4, 0, int32(round % 5)})
		slots := graph.FromInt32s([]int32{int32(round % (blocks * bs))})
		meta := ops.AttentionMeta{
			BlockTables: graph.FromInt32s([]int32{0, 1}, 1, 2),
			SeqLens:     graph.FromInt32s([]int32{int32(round%(blocks*bs)) + 1}),
			CuSeqlensQ:  graph.FromInt32s([]int32{0, 1}),
			MaxSeqLen:   blocks * bs,
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gathered := ops.GatherRows(table, idx)
				kc := graph.FromFloat32s(make([]float32, blocks*bs*hs), blocks, bs, 1, hs)
				vc := graph.FromFloat32s(make([]float32, blocks*bs*hs), blocks, bs, 1, hs)
				kv := graph.FromFloat32s(loomtest.Float32s(loomtest.Rand(uint64(round)), hs, -1, 1), 1, 1, hs)
				nk, nv := ops.KVWrite(kc, vc, kv, kv, slots)
				out := ops.PagedAttention(kv, nk, nv, meta, ops.AttentionOptions{})
				if err := rt.Eval(gathered, out); err != nil {
					errs <- fmt.Errorf("round %d goroutine %d: %w", round, g, err)
					return
				}
				got, _ := gathered.Float32s()
				for i, row := range []int{4, 0, round % 5} {
					for j := range 3 {
						if got[i*3+j] != tableVals[row*3+j] {
							errs <- fmt.Errorf("round %d goroutine %d: gathered[%d][%d] = %v, want %v", round, g, i, j, got[i*3+j], tableVals[row*3+j])
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}
