package vec

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

// Assembly reports whether the assembly routines are in use: the CPU has
// AVX2, FMA and F16C, enabled by the operating system, and SetAssembly has
// not turned them off.
func Assembly() bool { return assembly }
