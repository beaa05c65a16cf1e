//go:build !amd64

package vec

// asmImpls is nil: there is no assembly for this architecture.
var asmImpls *impls
