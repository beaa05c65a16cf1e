package vec

import "os"

// assembly is whether the routines run their assembly (see SetAssembly).
// Each routine picks its implementation with a plain branch on it, not
// through a func value, so that escape analysis sees through the call and
// callers' buffers stay on their stacks.
var assembly = hasAssembly

// SetAssembly selects the assembly routines (on, where the CPU has AVX2,
// FMA and F16C) or the Go ones (off), for this package and for the CPU
// kernels that ask Assembly, and returns whether the assembly was in use.
// It exists so that tests and benchmarks can compare the two; it must not
// be called while kernels run.
func SetAssembly(on bool) (was bool) {
	was = assembly
	assembly = on && hasAssembly
	return was
}

// avx512 is whether the kernels that have an AVX-512 form run it (see
// SetAVX512): by default where the CPU has it, unless the environment
// sets LOOM_CPU_AVX512=0 (for comparisons, or where 512-bit instructions
// lower the clock).
var avx512 = hasAVX512 && os.Getenv("LOOM_CPU_AVX512") != "0"

// SetAVX512 selects the AVX-512 forms (on, where the CPU has them) or the
// AVX2 ones and returns whether the AVX-512 forms were selected; like
// SetAssembly it exists for tests and benchmarks and must not be called
// while kernels run.
func SetAVX512(on bool) (was bool) {
	was = avx512
	avx512 = on && hasAVX512
	return was
}

// AVX512 reports whether the kernels with an AVX-512 form run it: the
// assembly is in use, the CPU has AVX512F, AVX512BW and AVX512_VNNI,
// enabled by the operating system, and neither SetAVX512 nor
// LOOM_CPU_AVX512=0 has turned it off.
func AVX512() bool { return assembly && avx512 }

// Assembly reports whether the assembly routines are in use: the CPU has
// AVX2, FMA and F16C, enabled by the operating system, and SetAssembly has
// not turned them off.
func Assembly() bool { return assembly }
