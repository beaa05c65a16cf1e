package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loomrt/loom/metal/mslcheck"
)

// TestMSLCheckCommand runs loom msl-check on a good and a broken file: the
// broken one's error names its file and line, and the exit status is 1.
func TestMSLCheckCommand(t *testing.T) {
	if _, err := mslcheck.Compiler(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.metal"), filepath.Join(dir, "bad.metal")
	const head = "#include <metal_stdlib>\nusing namespace metal;\n"
	if err := os.WriteFile(good, []byte(head+"kernel void twice(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {\n  x[i] = 2.0f * x[i];\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(head+"kernel void twice(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {\n  x[i] = 2.0f * y[i];\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"msl-check", good}, 0, good + ": ok", ""},
		{[]string{"msl-check", good, bad}, 1, good + ": ok", bad + ":4:17: error: 'y' was not declared"},
		{[]string{"msl-check", filepath.Join(dir, "none.metal")}, 1, "", "none.metal: no such file"},
		{[]string{"msl-check"}, 2, "", "want at least one FILE.metal"},
		{[]string{"msl-check", "-h"}, 0, "install-msl-check.sh", ""},
	} {
		var code int
		stdout, stderr, _ := capture(func() error { code = runMain(c.args); return nil })
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("loom %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}
