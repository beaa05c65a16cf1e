package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/loomrt/loom/cpu/internal/vec"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/primitives"
)

// TestAttnExp2 checks the exp2 of the attention kernels against math.Exp2
// over the range the kernels use (scores minus their maximum, ≤ 0) and
// beyond, and its special values.
func TestAttnExp2(t *testing.T) {
	worst := 0.0
	for k := -130 * 4096; k <= 130*4096; k++ {
		x := float32(k) / 4096
		got, want := float64(attnExp2(x)), math.Exp2(float64(x))
		switch {
		case x < -126:
			if got != 0 {
				t.Fatalf("attnExp2(%v) = %v, want 0 below -126", x, got)
			}
		case x > 127:
			if !math.IsInf(got, 1) {
				t.Fatalf("attnExp2(%v) = %v, want +Inf above 127", x, got)
			}
		case want >= 0x1p-126: // normal results: relative error
			worst = max(worst, math.Abs(got-want)/want)
		}
	}
	if worst > 0x1p-23 {
		t.Errorf("relative error up to %g, want ≤ 2^-23 (one unit in the last place)", worst)
	}
	if attnExp2(0) != 1 || attnExp2(1) != 2 || attnExp2(-1) != 0.5 || attnExp2(-20) != 0x1p-20 {
		t.Errorf("attnExp2 is not exact at integers: 2^0 = %v, 2^1 = %v, 2^-1 = %v, 2^-20 = %v", attnExp2(0), attnExp2(1), attnExp2(-1), attnExp2(-20))
	}
	if v := attnExp2(float32(math.Inf(-1))); v != 0 {
		t.Errorf("attnExp2(-Inf) = %v, want 0", v)
	}
	if v := attnExp2(float32(math.NaN())); v == v {
		t.Errorf("attnExp2(NaN) = %v, want NaN", v)
	}
}

// TestAttentionBlockKernels checks the scores and values kernels, assembly
// and Go, against float64 sums, for row counts around the eight-row step
// and row sizes around the 32- and 64-element chunks.
func TestAttentionBlockKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, asm := range []bool{true, false} {
		was := vec.SetAssembly(asm)
		for _, size := range []int{8, 16, 24, 40, 64, 72, 80, 96, 128, 136, 256} {
			for _, n := range []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 32} {
				stride := size + 8*r.IntN(3)
				off := r.IntN(5)
				rows := make([]float32, off+n*stride+size)
				for i := range rows {
					rows[i] = r.Float32()*2 - 1
				}
				q := make([]float32, size)
				for i := range q {
					q[i] = r.Float32()*4 - 2
				}
				// Outputs sit before guard elements that must stay untouched.
				const guard = 64
				sbuf := make([]float32, n+guard)
				s := sbuf[:n]
				blockScores(s, q, rows, off, stride)
				p := make([]float32, n)
				for j := range p {
					p[j] = r.Float32()
				}
				obuf := make([]float32, size+guard)
				o := obuf[:size]
				want := make([]float64, size)
				for i := range o {
					o[i] = r.Float32()
					want[i] = float64(o[i])
				}
				blockValues(o, p, rows, off, stride)
				for _, g := range append(sbuf[n:], obuf[size:]...) {
					if g != 0 {
						t.Fatalf("asm %v size %d rows %d: a kernel wrote past its output", asm, size, n)
					}
				}
				for j := range n {
					row := rows[off+j*stride : off+j*stride+size]
					dot, mag := 0.0, 0.0
					for i, x := range row {
						dot += float64(q[i]) * float64(x)
						mag += math.Abs(float64(q[i]) * float64(x))
						want[i] += float64(p[j]) * float64(x)
					}
					if math.Abs(float64(s[j])-dot) > 1e-6*mag+1e-7 {
						t.Fatalf("asm %v size %d rows %d: score %d = %v, want %v", asm, size, n, j, s[j], dot)
					}
				}
				for i := range o {
					if math.Abs(float64(o[i])-want[i]) > 1e-5 {
						t.Fatalf("asm %v size %d rows %d: value %d = %v, want %v", asm, size, n, i, o[i], want[i])
					}
				}
			}
		}
		vec.SetAssembly(was)
	}
}

// TestAttentionBlockKernelsBounds checks that rows past the buffer are
// refused before any kernel reads them.
func TestAttentionBlockKernelsBounds(t *testing.T) {
	rows := make([]float32, 100)
	for _, c := range []struct{ n, off, stride int }{{2, 0, 90}, {1, 90, 16}, {1, -1, 16}, {2, 0, 8}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%d rows of 16 at %d, stride %d, in 100 elements: no panic", c.n, c.off, c.stride)
				}
			}()
			blockScores(make([]float32, c.n), make([]float32, 16), rows, c.off, c.stride)
		}()
	}
}

// TestBlockExp2 checks the weights and their sum against math.Exp2, with
// the assembly (where it runs) and without, on lengths around 8.
func TestBlockExp2(t *testing.T) {
	for _, asm := range []bool{true, false} {
		was := vec.SetAssembly(asm)
		worst := 0.0
		for _, n := range []int{0, 1, 7, 8, 9, 16, 23} {
			for k := -140 * 256; k <= 4*256; k += n + 1 {
				m := float32(k%7) / 3
				s := make([]float32, n)
				want := make([]float64, n)
				sum := 0.0
				for i := range s {
					s[i] = float32(k+i*37)/256 + m
					want[i] = math.Exp2(float64(s[i] - m)) // x is rounded to float32 first
					if s[i]-m < -126 {
						want[i] = 0
					}
					sum += want[i]
				}
				got := blockExp2(s, m)
				for i := range s {
					if want[i] == 0 {
						if s[i] != 0 {
							t.Fatalf("asm %v: 2^%v = %v, want 0 below 2^-126", asm, float64(k+i*37)/256, s[i])
						}
						continue
					}
					if want[i] >= 0x1p-125 { // normal results: relative error
						worst = max(worst, math.Abs(float64(s[i])-want[i])/want[i])
					}
				}
				if math.Abs(float64(got)-sum) > 1e-6*sum+0x1p-120 {
					t.Fatalf("asm %v: sum %v, want %v", asm, got, sum)
				}
			}
		}
		if worst > 0x1p-23 {
			t.Errorf("asm %v: relative error up to %g, want ≤ 2^-23", asm, worst)
		}
		nan := []float32{1, 2, 3, 4, 5, 6, 7, float32(math.NaN())}
		if blockExp2(nan, 0); nan[7] == nan[7] || nan[0] != 2 {
			t.Errorf("asm %v: weights %v, want 2^1 first and NaN last", asm, nan)
		}
		vec.SetAssembly(was)
	}
}

// TestAttentionTokenKernels checks the per-token kernels, assembly and Go,
// for every cache dtype, against float64 sums: one block's scores for a
// token's query heads and the block's weighted values added to their
// outputs, over group sizes, row sizes (multiples of 16 take the assembly,
// multiples of 32 its AVX-512 form where the CPU has it, others the Go
// loops) and key counts up to the block size.
func TestAttentionTokenKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = r.Float32()*2 - 1
		}
		return v
	}
	if !vec.AVX512() {
		t.Log("the CPU has no AVX-512 (or LOOM_CPU_AVX512=0): the AVX-512 kernels are not tested")
	}
	wasWide := vec.AVX512()
	defer vec.SetAVX512(wasWide)
	for _, mode := range []string{"avx512", "avx2", "go"} {
		if mode == "avx512" && !wasWide {
			continue // it would run the AVX2 kernels under the AVX-512 name
		}
		was := vec.SetAssembly(mode != "go")
		vec.SetAVX512(mode == "avx512")
		for _, dt := range []graph.DType{graph.Float32, graph.Float16, graph.BFloat16} {
			for _, hs := range []int{8, 16, 24, 40, 48, 64, 80, 96, 128, 256} {
				for _, c := range []struct{ heads, group int }{{1, 1}, {3, 1}, {8, 1}, {2, 4}, {1, 8}, {5, 3}, {4, 2}} {
					bs := []int{8, 16, 32}[r.IntN(3)]
					n := 1 + r.IntN(bs)
					rows, kstride, off := c.heads*c.group, c.heads*hs+8*r.IntN(3), r.IntN(9)
					ahead := r.IntN(3) * r.IntN(1<<16) // prefetches only: any offset, 0 included, reads nothing
					q := rnd(rows * hs)
					elems := off + (n-1)*kstride + c.heads*hs
					raw := make([]byte, elems*dt.Size())
					graph.PutFloat32s(dt, raw, rnd(elems))
					k, kv := newFloats(dt, raw), graph.DecodeFloat64s(dt, raw)[off:]
					const guard = 64
					sbuf := make([]float32, (rows-1)*bs+n+guard)
					tokenDots(sbuf[:len(sbuf)-guard], bs, q, k, off, kstride, n, hs, c.group, ahead)
					o := rnd(rows*hs + guard)
					for i := rows * hs; i < len(o); i++ {
						o[i] = 0
					}
					want := make([]float64, rows*hs)
					for i := range want {
						want[i] = float64(o[i])
					}
					p := rnd((rows-1)*bs + n)
					tokenAxpys(o[:rows*hs], p, bs, k, off, kstride, n, hs, c.group, ahead)
					what := fmt.Sprintf("%s %s hs %d heads %d group %d keys %d of %d", mode, dt, hs, c.heads, c.group, n, bs)
					for x := range rows {
						for j := range n {
							kr := kv[j*kstride+x/c.group*hs:][:hs]
							dot, mag := 0.0, 0.0
							for i, kx := range kr {
								dot += float64(q[x*hs+i]) * kx
								mag += math.Abs(float64(q[x*hs+i]) * kx)
								want[x*hs+i] += float64(p[x*bs+j]) * kx
							}
							if got := float64(sbuf[x*bs+j]); math.Abs(got-dot) > 1e-6*mag+1e-7 {
								t.Fatalf("%s: score of row %d key %d = %v, want %v", what, x, j, got, dot)
							}
						}
					}
					for i := range want {
						if math.Abs(float64(o[i])-want[i]) > 1e-5*float64(n) {
							t.Fatalf("%s: output %d = %v, want %v", what, i, o[i], want[i])
						}
					}
					for _, g := range append(sbuf[len(sbuf)-guard:], o[rows*hs:]...) {
						if g != 0 {
							t.Fatalf("%s: a kernel wrote past its output", what)
						}
					}
				}
			}
		}
		vec.SetAssembly(was)
	}
}

// evictBuf, made on first use, is larger than the last-level cache (the
// development VM reports 480 MB of L3): reading it pushes a K/V cache out,
// as a decode step's weights do between its layers' attention. Its pages
// are written once, or they would all be the one zero page.
var evictBuf = sync.OnceValue(func() []int64 {
	b := make([]int64, 512<<20/8)
	for i := range b {
		b[i] = int64(i)
	}
	return b
})

var evictSink int64

// evictCaches reads evictBuf on every worker, as a step's GEMVs do, which
// also leaves the pool's helpers spinning, as they are when a step's
// attention starts.
func evictCaches() {
	buf := evictBuf()
	var sum atomic.Int64
	Parallel(goruntime.GOMAXPROCS(0), len(buf), 1<<16, func(lo, hi int) {
		var s int64
		for i := lo; i < hi; i += 8 {
			s += buf[i]
		}
		sum.Add(s)
	})
	evictSink += sum.Load()
}

// BenchmarkAttentionDispatch times one paged attention dispatch of a
// Qwen3-0.6B decode layer (16 query heads, 8 KV heads of 128, bfloat16,
// blocks of 16, batch 1) called straight, without the runtime around it:
// at context 128 the dispatch is short enough that its fixed costs show.
// Cold runs evict the caches first, as a step's weights do.
func BenchmarkAttentionDispatch(b *testing.B) {
	const heads, kvh, hs, bs = 16, 8, 128, 16
	r := rand.New(rand.NewPCG(3, 3))
	bf16 := func(n int) []byte {
		v := make([]byte, 2*n)
		for i := 0; i < n; i++ {
			u := math.Float32bits(r.Float32()*2-1) >> 16
			v[2*i], v[2*i+1] = byte(u), byte(u>>8)
		}
		return v
	}
	i32 := func(v ...int32) []byte {
		out := make([]byte, 4*len(v))
		for i, x := range v {
			out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
		}
		return out
	}
	for _, ctx := range []int{128, 1024} {
		for _, split := range []bool{false, true} {
			maxSeq := ctx + 16
			blocks := (maxSeq + bs - 1) / bs
			table := make([]int32, blocks)
			for i, j := range r.Perm(blocks) {
				table[i] = int32(j)
			}
			p := &primitives.PagedAttentionParams{
				NumSeqs: 1, NumTokens: 1, NumHeads: heads, NumKVHeads: kvh, HeadSize: hs, BlockSize: bs,
				NumBlocks: int32(blocks), MaxBlocksPerSeq: int32(blocks), MaxSeqLen: int32(maxSeq),
				PartitionSize: primitives.AttentionPartitionSize, Scale: 1 / float32(math.Sqrt(hs)),
			}
			args := [][]byte{bf16(heads * hs), bf16(blocks * bs * kvh * hs), bf16(blocks * bs * kvh * hs),
				i32(table...), i32(int32(ctx)), i32(0, 1)}
			name := primitives.PagedAttentionKernel(graph.BFloat16, hs, bs, false)
			if split {
				parts := primitives.AttentionPartitions(primitives.AttentionPartitioning{}, maxSeq, blocks, bs)
				p.NumPartitions = int32(parts)
				args = append(args, make([]byte, 4*heads*parts), make([]byte, 4*heads*parts), make([]byte, 2*heads*parts*hs), make([]byte, 4*kvh))
				name = primitives.PagedAttentionSplitKernel(graph.BFloat16, hs, bs, false)
			}
			args = append(args, make([]byte, 2*heads*hs))
			c := &Call{Params: p, workers: goruntime.GOMAXPROCS(0)}
			for _, a := range args {
				c.Args = append(c.Args, Arg{Bytes: a})
			}
			k, ok := Lookup(name)
			if !ok {
				b.Fatalf("no kernel %s", name)
			}
			for _, cold := range []bool{false, true} {
				b.Run(fmt.Sprintf("ctx%d/split=%v/cold=%v", ctx, split, cold), func(b *testing.B) {
					for b.Loop() {
						if cold {
							b.StopTimer()
							evictCaches()
							b.StartTimer()
						}
						if err := k(c); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(2*ctx*kvh*hs*2)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// TestAttentionTokenAxpysWidths holds the AVX-512 token axpys to the AVX2
// ones' bits: each output element adds its keys' products in key order
// whatever the register width.
func TestAttentionTokenAxpysWidths(t *testing.T) {
	if !vec.AVX512() {
		t.Skip("the CPU has no AVX-512 (or LOOM_CPU_AVX512=0)")
	}
	defer vec.SetAVX512(true)
	r := rand.New(rand.NewPCG(7, 7))
	for _, dt := range []graph.DType{graph.Float32, graph.BFloat16, graph.Float16} {
		for _, hs := range []int{32, 64, 96, 128, 256} {
			const rows, bs, n, group = 6, 16, 13, 3
			vstride := rows / group * hs
			v := make([]float32, n*vstride)
			for i := range v {
				v[i] = r.Float32()*2 - 1
			}
			raw := make([]byte, len(v)*dt.Size())
			graph.PutFloat32s(dt, raw, v)
			p := make([]float32, rows*bs)
			for i := range p {
				p[i] = r.Float32()
			}
			var outs [2][]float32
			for w, wide := range []bool{false, true} {
				vec.SetAVX512(wide)
				outs[w] = make([]float32, rows*hs)
				for i := range outs[w] {
					outs[w][i] = float32(i%7) / 8
				}
				tokenAxpys(outs[w], p, bs, newFloats(dt, raw), 0, vstride, n, hs, group, 0)
			}
			for i, a := range outs[0] {
				if b := outs[1][i]; math.Float32bits(a) != math.Float32bits(b) {
					t.Fatalf("%s hs %d: output %d: AVX-512 %v, AVX2 %v", dt, hs, i, b, a)
				}
			}
		}
	}
}
