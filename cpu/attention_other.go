//go:build !amd64

package cpu

// scoresAsm reports that there is no assembly scores kernel for this
// architecture.
func scoresAsm(s, q, k []float32, stride int) bool { return false }

// valuesAsm reports that there is no assembly values kernel for this
// architecture.
func valuesAsm(o, p, v []float32, stride int) bool { return false }

// exp2SumAsm reports that there is no assembly exp2 for this architecture.
func exp2SumAsm(s []float32, m float32) (float32, bool) { return 0, false }

// tokenDotsAsm reports that there is no assembly for this architecture.
func tokenDotsAsm(s []float32, bs int, q []float32, k floats, off, kstride, n, hs, group, ahead int) bool {
	return false
}

// tokenAxpysAsm reports that there is no assembly for this architecture.
func tokenAxpysAsm(o, p []float32, bs int, v floats, off, vstride, n, hs, group, ahead int) bool {
	return false
}
