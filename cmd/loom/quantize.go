package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/loomrt/loom/model"
)

func init() {
	commands["quantize"] = command{"convert a float checkpoint to MLX's 4- or 8-bit affine format (docs/QUANT.md)", runQuantize}
}

func runQuantize(args []string) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	bits := fs.Int("bits", 4, "bits a code: 4 or 8")
	groupSize := fs.Int("group-size", 64, "elements a scale and bias: 32, 64 or 128")
	if err := parseFlags(fs, args, "SRC DST"); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErrorf("want a source and a destination directory, got %d arguments (loom quantize -h)", fs.NArg())
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	if err := model.QuantizeCheckpoint(src, dst, *bits, *groupSize); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %s quantized to %d bits in groups of %d\n", dst, src, *bits, *groupSize)
	return nil
}
