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

// rowDotsAsm reports that there is no assembly for this architecture.
func rowDotsAsm(s []float32, stride int, q []float32, k floatRows, off, hs, group int) bool {
	return false
}

// rowAxpysAsm reports that there is no assembly for this architecture.
func rowAxpysAsm(o, p []float32, stride int, v floatRows, off, hs, group int) bool {
	return false
}
