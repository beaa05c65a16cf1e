package ops_test

import (
	"fmt"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// A decode step of one sequence: write the new token's key and value into
// the paged cache in place, then attend to the sequence's 3 tokens.
func ExamplePagedAttention() {
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		panic(err)
	}
	const blocks, blockSize, kvHeads, headSize = 4, 8, 1, 64
	kCache := graph.Full(graph.Float32, 0, blocks, blockSize, kvHeads, headSize)
	vCache := graph.Full(graph.Float32, 0, blocks, blockSize, kvHeads, headSize)
	// The sequence lives in block 2: its token 2 goes to slot 2·8+2.
	k := graph.Full(graph.Float32, 1, 1, kvHeads, headSize)
	v := graph.Full(graph.Float32, 0.5, 1, kvHeads, headSize)
	kCache, vCache = ops.KVWrite(kCache, vCache, k, v, graph.FromInt32s([]int32{18}))

	q := graph.Full(graph.Float32, 1, 1, 2, headSize) // 2 query heads share the KV head
	out := ops.PagedAttention(q, kCache, vCache, ops.AttentionMeta{
		BlockTables: graph.FromInt32s([]int32{2}, 1, 1),
		SeqLens:     graph.FromInt32s([]int32{3}),
		CuSeqlensQ:  graph.FromInt32s([]int32{0, 1}),
		MaxSeqLen:   3,
	}, ops.AttentionOptions{})
	if err := rt.Eval(out); err != nil {
		panic(err)
	}
	// Scores 0, 0 and 64/√64 = 8: the new token's value 0.5 gets the
	// weight e^8/(2+e^8).
	o, _ := out.Float32s()
	fmt.Println(out.Shape(), o[0])
	fmt.Println(rt.LastStats().Counters)
	// Output:
	// [1 2 64] 0.49966478
	// map[paged_attention.single:1]
}
