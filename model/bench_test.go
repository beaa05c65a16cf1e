package model

import (
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// BenchmarkDecodeStep times decode steps of the tiny model on the CPU, batch
// 1, with contexts of 64 to 1,024 tokens (the sequence restarts when full).
// It reports tokens/s and the weight bytes read per second.
func BenchmarkDecodeStep(b *testing.B) {
	tg := loomtest.Targets(b)[0]
	e := loadTiny(b, tg, graph.Float32)
	prompt := make([]int32, 64)
	for i := range prompt {
		prompt[i] = int32(' ' + i)
	}
	restart := func() {
		e.Cache.Free(0) // no sequence yet on the first call
		if err := e.Cache.Add(0); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Step([]int{0}, [][]int32{prompt}); err != nil {
			b.Fatal(err)
		}
	}
	restart()
	b.ResetTimer()
	for i := range b.N {
		if e.Cache.Len(0) >= 1024 {
			b.StopTimer()
			restart()
			b.StartTimer()
		}
		if _, err := e.Step([]int{0}, [][]int32{{int32(i % 256)}}); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "tokens/s")
	b.ReportMetric(float64(e.Model.WeightBytes())*float64(b.N)/sec/1e9, "weight-GB/s")
}
