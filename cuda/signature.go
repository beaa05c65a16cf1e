package cuda

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/loomrt/loom/primitives"
)

// cudaKernel is a kernel as the CUDA sources declare it.
type cudaKernel struct {
	file   string
	params []cudaParam
	first  string // the body's first statement, without its semicolon
}

type cudaParam struct{ typ, name string }

// kernelRE matches a kernel's declaration up to its parameters, past its
// attributes (__launch_bounds__, __cluster_dims__).
var kernelRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(?:__\w+__\([^)]*\)\s*)*(\w+)\s*\(`)

// parseKernels reads the extern "C" __global__ kernels of preprocessed source.
func parseKernels(file, src string, into map[string]cudaKernel) error {
	for _, m := range kernelRE.FindAllStringSubmatchIndex(src, -1) {
		name := src[m[2]:m[3]]
		if old, dup := into[name]; dup {
			return fmt.Errorf("kernel %s is defined in %s and %s", name, old.file, file)
		}
		end := strings.IndexByte(src[m[1]:], ')')
		if end < 0 {
			return fmt.Errorf("kernel %s: unterminated parameter list", name)
		}
		var params []cudaParam
		for _, p := range strings.Split(src[m[1]:m[1]+end], ",") {
			f := strings.Fields(strings.ReplaceAll(p, "*", " * "))
			if len(f) < 2 {
				return fmt.Errorf("kernel %s: cannot read parameter %q", name, p)
			}
			params = append(params, cudaParam{strings.Join(f[:len(f)-1], " "), f[len(f)-1]})
		}
		body := src[m[1]+end:]
		var first string
		if open := strings.IndexByte(body, '{'); open >= 0 {
			if end := strings.IndexAny(body[open+1:], ";}"); end >= 0 {
				first = strings.Join(strings.Fields(body[open+1:open+1+end]), " ")
			}
		}
		into[name] = cudaKernel{file, params, first}
	}
	return nil
}

// checkSignature holds a kernel's declaration to its catalog entry: the
// catalog's buffer arguments by name, as pointers, then its params struct
// by value, then the status record.
func checkSignature(spec primitives.KernelSpec, k cudaKernel) []error {
	var errs []error
	want := len(spec.Args) + 1
	if spec.Params != nil {
		want++
	}
	if len(k.params) != want {
		return []error{fmt.Errorf("kernel %s (%s) has %d parameters, want %d: the catalog's %d buffer arguments%s and the status record",
			spec.Name, k.file, len(k.params), want, len(spec.Args), map[bool]string{true: ", the params struct", false: ""}[spec.Params != nil])}
	}
	for i, arg := range spec.Args {
		if p := k.params[i]; p.name != arg.Name || !strings.HasSuffix(p.typ, "*") {
			errs = append(errs, fmt.Errorf("kernel %s (%s) parameter %d is %s %s, want a pointer named %s", spec.Name, k.file, i, p.typ, p.name, arg.Name))
		}
	}
	if spec.Params != nil {
		pt := reflect.TypeOf(spec.Params).Elem().Name()
		if p := k.params[len(spec.Args)]; p.typ != "const "+pt {
			errs = append(errs, fmt.Errorf("kernel %s (%s) parameter %d is %s %s, want const %s (by value)", spec.Name, k.file, len(spec.Args), p.typ, p.name, pt))
		}
	}
	if p := k.params[len(k.params)-1]; p.typ != "Status *" || p.name != "status" {
		errs = append(errs, fmt.Errorf("kernel %s (%s) ends with %s %s, want Status* status", spec.Name, k.file, p.typ, p.name))
	}
	return errs
}

// checkUserSource holds the declaration of spec's kernel in its CUDA
// source to the spec. The declaration is read from the source as written,
// so it must be written out (extern "C" __global__ void name(...)), not
// made by a macro.
func checkUserSource(spec primitives.KernelSpec) error {
	kernels := map[string]cudaKernel{}
	if err := parseKernels(spec.CUDA.File, spec.CUDA.Text, kernels); err != nil {
		return err
	}
	k, ok := kernels[spec.Name]
	if !ok {
		return fmt.Errorf(`%s declares no kernel %s: write its declaration out, extern "C" __global__ void %s(...), not through a macro`,
			spec.CUDA.File, spec.Name, spec.Name)
	}
	return errors.Join(checkSignature(spec, k)...)
}
