package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/loomrt/loom/metal/mslcheck"
)

func init() {
	commands["msl-check"] = command{"check Metal kernels without a Mac: loom msl-check FILE.metal... (needs g++: scripts/install-msl-check.sh)", runMSLCheck}
}

const mslCheckHelp = `Each FILE is compiled, as the Metal compiler compiles a .metal file, as
C++17 by g++ against Loom's shim of <metal_stdlib>, with every warning an
error. Errors name the file and line; the exit status is 1 when any file
fails. The shim knows the kernel keyword and [[kernel]], the address
spaces, scalar and vector types (with .xy and .rgb swizzles), math,
SIMD-group, threadgroup and atomic functions; it is stricter than Metal on implicit
half conversions and rejects double. It needs g++: run
scripts/install-msl-check.sh (Debian/Ubuntu) or install g++. To run a
kernel on inputs in the emulation, use package metal/mslcheck (Emulate)
from a Go test; docs/GUIDE.md shows how.`

func runMSLCheck(args []string) error {
	fs := flag.NewFlagSet("msl-check", flag.ContinueOnError)
	quiet := fs.Bool("q", false, "print nothing for files that pass")
	if err := parseFlags(fs, args, "FILE.metal...\n\n"+mslCheckHelp); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErrorf("want at least one FILE.metal")
	}
	if _, err := mslcheck.Compiler(); err != nil {
		return err
	}
	failed := 0
	for _, f := range fs.Args() {
		if err := mslcheck.CheckFiles(f); err != nil {
			failed++
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		if !*quiet {
			fmt.Printf("%s: ok\n", f)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files do not compile", failed, fs.NArg())
	}
	return nil
}
