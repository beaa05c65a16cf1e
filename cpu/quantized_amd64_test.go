package cpu

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/loomrt/loom/cpu/internal/vec"
)

// asmKernels returns the assembly micro-kernels this CPU runs, by name:
// AVX2 where the vec package runs its assembly, and AVX-512 where the CPU
// has it too.
func asmKernels() map[string]qdotKernel {
	kernels := map[string]qdotKernel{}
	if vec.Assembly() {
		kernels["avx2"] = qdotKernelAVX2
	}
	if vec.AVX512() {
		kernels["avx512"] = qdotKernelAVX512
	}
	return kernels
}

// TestSplitQX checks splitQXAVX512 element by element against its
// definition: in each run of 128, byte j (j < 64) and byte 128+j are the
// upper (signed) and lower (unsigned) byte of even element 2j, bytes 64+j
// and 192+j those of odd element 2j+1, where packQX's runs of 32 hold 16
// even elements, then 16 odd ones. Random elements, the extremes ±32767,
// −1, 0, −256 and 255 among them, over three runs.
func TestSplitQX(t *testing.T) {
	if !vec.AVX512() {
		t.Skip("the CPU has no AVX-512 (or LOOM_CPU_AVX512=0)")
	}
	r := rand.New(rand.NewPCG(11, 12))
	x := make([]int16, 3*128)
	for i := range x {
		x[i] = int16(r.IntN(65535) - 32767)
	}
	copy(x[5:], []int16{32767, -32767, -1, 0, -256, 255, 256, -255})
	want := slices.Clone(x)
	splitQXAVX512(x)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 2*len(x))
	for c := 0; c < len(want); c += 128 {
		run := b[2*c : 2*c+256]
		for j := range 64 {
			even, odd := want[c+32*(j/16)+j%16], want[c+32*(j/16)+16+j%16]
			for i, pair := range [2][3]int{{j, 128 + j, int(even)}, {64 + j, 192 + j, int(odd)}} {
				if got := 256*int(int8(run[pair[0]])) + int(run[pair[1]]); got != pair[2] {
					t.Fatalf("run %d, element %d (%s of pair %d): split to %d, want %d", c/128, 2*j+i, []string{"even", "odd"}[i], j, got, pair[2])
				}
			}
		}
	}
}
