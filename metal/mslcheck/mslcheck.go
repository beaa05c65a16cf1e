// Package mslcheck checks Metal Shading Language kernels on machines
// without Apple's Metal compiler. Check compiles MSL as C++17 with g++
// against a shim of <metal_stdlib> (shim/metal_stdlib, embedded) with every
// warning an error; Emulate (Linux) compiles it into a library that runs
// kernels on the CPU, a threadgroup's threads as fibers, so that a kernel's
// results can be compared with a reference in a Go test.
//
// The shim declares the part of Metal that Loom's kernels and kernels
// written in Apple's or MLX's style use: the kernel keyword and
// [[kernel]], the address-space qualifiers, scalar and vector types with
// swizzles of two or three components, the math, SIMD-group, threadgroup
// and atomic functions. It is
// stricter than Metal where that is cheap (half and bfloat convert only
// explicitly; double, printf and malloc are errors). A kernel that uses
// something the shim lacks fails to compile: the check never passes a
// kernel that calls a function Metal lacks, but it may reject valid MSL the
// shim does not know. It checks that kernels are well-formed C++ and, in
// the emulation, their logic; not Metal's compiler, memory model or
// hardware.
//
// g++ must be installed (scripts/install-msl-check.sh installs it).
package mslcheck

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed shim/metal_stdlib
var shim []byte

// ErrNoCompiler is returned when g++ is not installed.
var ErrNoCompiler = errors.New("g++ is not installed: run scripts/install-msl-check.sh (or install g++)")

// Compiler returns the path of the C++ compiler, or ErrNoCompiler.
func Compiler() (string, error) {
	path, err := exec.LookPath("g++")
	if err != nil {
		return "", ErrNoCompiler
	}
	return path, nil
}

// Error is a compilation that failed: the compiler's messages, whose
// file:line locations name the checked file (the shim's as
// <metal_stdlib>).
type Error struct {
	File     string
	Messages string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s does not compile:\n%s", e.File, e.Messages)
}

// CheckFiles checks each file as its own translation unit, as the Metal
// compiler compiles a .metal file, and returns all their errors joined.
func CheckFiles(files ...string) error {
	var errs []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, Check(f, string(src)))
	}
	return errors.Join(errs...)
}

// Check compiles src, named name in the messages, as C++ through the shim
// with -Wall -Wextra -Werror (Metal's attributes exempt). It returns an
// *Error with the compiler's messages when compilation fails.
func Check(name, src string) error {
	return compile(name, src, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-Wno-attributes", "-fmax-errors=20")
}

// compile runs g++ on src in a scratch directory holding the shim; the
// messages name name instead of the scratch file.
func compile(name, src string, flags ...string) error {
	gxx, err := Compiler()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mslcheck")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "metal_stdlib"), shim, 0o644); err != nil {
		return err
	}
	file := filepath.Join(dir, "src.metal")
	if err := os.WriteFile(file, []byte(lineDirective(name)+src), 0o644); err != nil {
		return err
	}
	// Quoted includes are found beside the checked file, as Metal finds them.
	args := append(flags, "-x", "c++", "-I", dir, "-iquote", filepath.Dir(name), file)
	cmd := exec.Command(gxx, args...)
	// ASCII quotes and English messages, whatever the user's locale.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msgs := strings.ReplaceAll(string(out), filepath.Join(dir, "metal_stdlib"), "<metal_stdlib>")
		msgs = strings.ReplaceAll(msgs, file, name)
		if msgs == "" {
			msgs = err.Error()
		}
		return &Error{name, msgs}
	}
	return nil
}

// lineDirective makes the compiler's locations name name, line 1 being the
// first line of the source.
func lineDirective(name string) string {
	return "#line 1 " + strconv.Quote(name) + "\n"
}

// Preprocess expands the macros of src the way the Metal compiler does,
// against an empty <metal_stdlib>, so that kernel declarations can be read
// by ParseKernels.
func Preprocess(src string) (string, error) {
	gxx, err := Compiler()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "mslcheck")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "metal_stdlib"), nil, 0o644); err != nil {
		return "", err
	}
	file := filepath.Join(dir, "src.metal")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		return "", err
	}
	out, err := exec.Command(gxx, "-E", "-P", "-x", "c++", "-std=c++17", "-I", dir, file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("preprocessing the MSL: %v\n%s", err, out)
	}
	return string(out), nil
}

// Param is a kernel parameter: bound to a buffer index, or given by the
// attribute Attr (a thread position).
type Param struct {
	Index int // -1 for an attribute parameter
	Attr  string
	Name  string
	Type  string // the declared type, qualifiers included
}

// Kernel is a library function: its host name, the function and its
// template arguments (empty for a plain kernel), and its parameters.
type Kernel struct {
	Name         string
	Func         string
	TemplateArgs string
	Params       []Param
}

// Buffers returns the buffer-bound parameters.
func (k Kernel) Buffers() []Param {
	var out []Param
	for _, p := range k.Params {
		if p.Index >= 0 {
			out = append(out, p)
		}
	}
	return out
}

var (
	instantiationRE = regexp.MustCompile(`template\s*\[\[\s*host_name\s*\(\s*((?:"[^"]*"\s*)+)\)\s*\]\]\s*(?:\[\[\s*kernel\s*\]\]|\bkernel)\s*decltype\s*\(\s*(\w+)\s*<`)
	definitionRE    = regexp.MustCompile(`(?:\[\[\s*kernel\s*\]\]|\bkernel)\s*(?:\[\[[^\]]*\]\]\s*)*void\s+(\w+)\s*\(`)
	bufferRE        = regexp.MustCompile(`^(.*?)\b(\w+)\s*\[\[\s*buffer\s*\(\s*(\d+)\s*\)\s*\]\]\s*$`)
	attrRE          = regexp.MustCompile(`^(.*?)\b(\w+)\s*\[\[\s*(\w+)\s*\]\]\s*$`)
	stringLitRE     = regexp.MustCompile(`"([^"]*)"`)
)

// ParseKernels reads the kernels of preprocessed MSL: kernel function
// definitions (templates or not, [[kernel]] or the kernel keyword) and
// explicit instantiations of the templates under a [[host_name]]. A
// non-template kernel is a library function under its own name. It also
// returns the template kernels that nothing instantiates.
func ParseKernels(src string) (kernels map[string]Kernel, unused []string, err error) {
	type def struct {
		params   []Param
		template bool
	}
	defs := map[string]def{}
	for _, m := range definitionRE.FindAllStringSubmatchIndex(src, -1) {
		fn := src[m[2]:m[3]]
		if _, dup := defs[fn]; dup {
			return nil, nil, fmt.Errorf("kernel function %s is defined twice", fn)
		}
		params, err := parseParams(src, m[1]-1)
		if err != nil {
			return nil, nil, fmt.Errorf("kernel function %s: %v", fn, err)
		}
		before := strings.TrimSpace(src[:m[0]])
		defs[fn] = def{params, strings.HasSuffix(before, ">")}
	}
	kernels = map[string]Kernel{}
	add := func(k Kernel) error {
		if _, dup := kernels[k.Name]; dup {
			return fmt.Errorf("kernel %s is defined twice", k.Name)
		}
		kernels[k.Name] = k
		return nil
	}
	used := map[string]bool{}
	for _, idx := range instantiationRE.FindAllStringSubmatchIndex(src, -1) {
		lits, fn := src[idx[2]:idx[3]], src[idx[4]:idx[5]]
		var name strings.Builder
		for _, lit := range stringLitRE.FindAllStringSubmatch(lits, -1) {
			name.WriteString(lit[1])
		}
		d, ok := defs[fn]
		if !ok || !d.template {
			return nil, nil, fmt.Errorf("kernel %s instantiates %s, which is not a kernel template", name.String(), fn)
		}
		depth, end := 1, idx[1]
		for ; end < len(src) && depth > 0; end++ {
			switch src[end] {
			case '<':
				depth++
			case '>':
				depth--
			}
		}
		used[fn] = true
		if err := add(Kernel{name.String(), fn, strings.TrimSpace(src[idx[1] : end-1]), d.params}); err != nil {
			return nil, nil, err
		}
	}
	for fn, d := range defs {
		switch {
		case !d.template:
			if err := add(Kernel{fn, fn, "", d.params}); err != nil {
				return nil, nil, err
			}
		case !used[fn]:
			unused = append(unused, fn)
		}
	}
	slices.Sort(unused)
	return kernels, unused, nil
}

// parseParams reads the parameter list whose '(' is at src[open].
func parseParams(src string, open int) ([]Param, error) {
	depth, start := 0, open+1
	var parts []string
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '(', '[', '<':
			depth++
		case ')', ']', '>':
			depth--
		case ',':
			if depth == 1 {
				parts = append(parts, src[start:i])
				start = i + 1
			}
		}
		if depth == 0 {
			parts = append(parts, src[start:i])
			break
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parameter list")
	}
	var params []Param
	for _, p := range parts {
		p = strings.Join(strings.Fields(p), " ")
		if m := bufferRE.FindStringSubmatch(p); m != nil {
			idx, _ := strconv.Atoi(m[3])
			params = append(params, Param{Index: idx, Name: m[2], Type: strings.TrimSpace(m[1])})
			continue
		}
		m := attrRE.FindStringSubmatch(p)
		if m == nil {
			return nil, fmt.Errorf("parameter %q has neither [[buffer(i)]] nor a thread-position attribute (unsupported)", p)
		}
		params = append(params, Param{Index: -1, Attr: m[3], Name: m[2], Type: strings.TrimSpace(m[1])})
	}
	return params, nil
}
