package mslcheck_test

import (
	"os"
	"testing"

	"github.com/loomrt/loom/metal/mslcheck"
)

// parse returns the kernels of a file.
func parse(t *testing.T, file string) map[string]mslcheck.Kernel {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := mslcheck.Preprocess(string(src))
	if err != nil {
		t.Fatal(err)
	}
	kernels, _, err := mslcheck.ParseKernels(pre)
	if err != nil {
		t.Fatal(err)
	}
	return kernels
}
