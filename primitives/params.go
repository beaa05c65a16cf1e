package primitives

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// CParamsDecls returns C-family declarations (MSL, CUDA C) of the params
// structs the given kernels take, sorted by name, each followed by a
// static_assert that its size is Go's. uintName is the target language's
// 32-bit unsigned integer ("uint" in MSL, "unsigned int" in CUDA C). The GPU
// backends generate their structs this way, so the layouts cannot drift.
func CParamsDecls(specs []KernelSpec, uintName string) (string, error) {
	types := map[string]reflect.Type{}
	for _, s := range specs {
		if s.Params == nil {
			continue
		}
		t := reflect.TypeOf(s.Params)
		if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			return "", fmt.Errorf("kernel %s: params %v is not a pointer to a struct", s.Name, t)
		}
		t = t.Elem()
		if old, ok := types[t.Name()]; ok && old != t {
			return "", fmt.Errorf("two params types are named %s (%v and %v)", t.Name(), old, t)
		}
		types[t.Name()] = t
	}
	var sb strings.Builder
	for _, n := range slices.Sorted(maps.Keys(types)) {
		decl, err := CParamsDecl(types[n], uintName)
		if err != nil {
			return "", err
		}
		sb.WriteString(decl)
	}
	return sb.String(), nil
}

// CParamsDecl declares one params struct. Fields keep their Go names; every
// field is a 4-byte scalar or a (nested) array of them, so the layout is the
// same in Go and the target, which the static_assert confirms.
func CParamsDecl(t reflect.Type, uintName string) (string, error) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "struct %s {\n", t.Name())
	for i := range t.NumField() {
		f := t.Field(i)
		ft, dims := f.Type, ""
		for ft.Kind() == reflect.Array {
			dims += fmt.Sprintf("[%d]", ft.Len())
			ft = ft.Elem()
		}
		var ctype string
		switch ft.Kind() {
		case reflect.Uint32:
			ctype = uintName
		case reflect.Int32:
			ctype = "int"
		case reflect.Float32:
			ctype = "float"
		default:
			return "", fmt.Errorf("params %s field %s: type %v is not a 4-byte scalar or an array of them", t.Name(), f.Name, f.Type)
		}
		name := f.Name
		if name == "_" {
			name = fmt.Sprintf("pad%d", i)
		}
		fmt.Fprintf(&sb, "  %s %s%s;\n", ctype, name, dims)
	}
	fmt.Fprintf(&sb, "};\nstatic_assert(sizeof(%s) == %d, \"%s: layout differs from Go's\");\n\n", t.Name(), t.Size(), t.Name())
	return sb.String(), nil
}
