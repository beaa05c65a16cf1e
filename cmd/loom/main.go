// Command loom runs Loom models and benchmarks.
//
//	loom generate [-model DIR] [-prompt TEXT | -prompt-ids IDS] [-max-tokens N] [-temperature T] [-stop S] [-json] [flags]
//	loom bench NAME [flags]
//	loom info [-model DIR]
//	loom tokenize [-model DIR] [-json] TEXT
//	loom serve [-model DIR] [-addr HOST:PORT] [-device D] [flags]
//	loom help [COMMAND]
//
// The generated text alone goes to stdout; model information, settings and
// timings go to stderr.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
)

// command is a subcommand of loom.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func main() {
	os.Exit(runMain(os.Args[1:]))
}

// runMain runs loom with the given arguments and returns the exit status:
// 0, 1 for a command's error, 2 for a wrong command line.
func runMain(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			return runMain([]string{args[1], "-h"})
		}
		usage(os.Stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "loom: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 2
	}
	if err := cmd.run(args[1:]); err != nil {
		if errors.Is(err, errHelpShown) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "loom %s: %v\n", args[0], err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: loom COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nloom help COMMAND (or loom COMMAND -h) lists a command's flags.")
	fmt.Fprintf(w, "The default model is $%s, else %s in the working directory or beside the loom binary.\n", modelEnv, defaultModel)
}

// errHelpShown says a command printed its help, as asked: loom exits 0.
var errHelpShown = errors.New("help shown")

// usageError is a wrong command line: loom exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parseFlags parses a command's flags. -h and -help print them on stdout
// and return errHelpShown. args names the positional arguments the command
// takes, for the usage line; "" means none, and any is an error.
func parseFlags(fs *flag.FlagSet, args []string, argsUsage string) error {
	fs.SetOutput(io.Discard) // errors are returned, help is printed below
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Printf("usage: loom %s [flags] %s\n\nflags:\n", fs.Name(), argsUsage)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return errHelpShown
	}
	if err != nil {
		return usageErrorf("%v (loom %s -h lists the flags)", err, fs.Name())
	}
	if argsUsage == "" && fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (flags come before arguments; loom %s -h lists the flags)", fs.Arg(0), fs.Name())
	}
	return nil
}

// modelEnv names the environment variable that gives the default model.
const modelEnv = "LOOM_MODEL"

// defaultModel is the tiny model the repository ships, relative to the
// repository root.
const defaultModel = "testdata/tiny-qwen3"

// modelFlag adds the -model flag to fs.
func modelFlag(fs *flag.FlagSet, what string) *string {
	return fs.String("model", "", what+" (default: $"+modelEnv+", else "+defaultModel+" in the working directory or beside the loom binary)")
}

// findModel returns dir, or when it is empty the default model: the
// directory $LOOM_MODEL names, else the shipped tiny model in the working
// directory (the repository root) or beside the loom binary.
func findModel(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if env := os.Getenv(modelEnv); env != "" {
		return env, nil
	}
	tried := []string{defaultModel}
	if exe, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(exe), defaultModel), filepath.Join(filepath.Dir(exe), filepath.Base(defaultModel)))
	}
	for _, d := range tried {
		if _, err := os.Stat(filepath.Join(d, "config.json")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no model given and none found at %s: pass -model DIR or set %s=DIR", strings.Join(tried, ", "), modelEnv)
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

// startCPUProfile writes a CPU profile to path until stop is called (the
// benchmarks' -cpuprofile).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
