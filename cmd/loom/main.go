// Command loom runs Loom models and benchmarks.
//
//	loom generate [-model DIR] [-prompt TEXT] [-max-tokens N] [-temperature T] [-seed S]
//	loom bench NAME [flags]
//	loom info
//	loom tokenize [-model DIR] [-json] TEXT
package main

import (
	"fmt"
	"os"
	"slices"
	"sort"
)

// command is a subcommand of loom.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "loom: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "loom %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loom COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}

// benchmark is one `loom bench NAME`.
type benchmark struct {
	summary string
	run     func(args []string) error
}

var benchmarks = map[string]benchmark{}

func init() {
	commands["bench"] = command{"run a benchmark: loom bench NAME [flags] (loom bench list)", runBench}
}

func runBench(args []string) error {
	names := make([]string, 0, len(benchmarks))
	for n := range benchmarks {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(args) == 0 || args[0] == "list" || args[0] == "-h" || args[0] == "help" {
		fmt.Println("benchmarks:")
		for _, n := range names {
			fmt.Printf("  %-10s %s\n", n, benchmarks[n].summary)
		}
		return nil
	}
	b, ok := benchmarks[args[0]]
	if !ok {
		return fmt.Errorf("unknown benchmark %q (have %v)", args[0], names)
	}
	return b.run(args[1:])
}
