package metal

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/loomrt/loom/metal/mslcheck"
	"github.com/loomrt/loom/primitives"
)

// paramsTypeRE matches the struct a params parameter's type names.
var paramsTypeRE = regexp.MustCompile(`^constant\s+(\w+)\s*&$`)

// checkSignature holds an MSL kernel's parameters to its catalog entry: the
// catalog's arguments at buffer indices 0..n-1 with their names, in the
// device address space, the params struct (by the Go type's name, passed
// by constant reference) at index n, and nothing else but the status
// record at statusIndex.
func checkSignature(spec primitives.KernelSpec, k mslcheck.Kernel) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("kernel %s (function %s): %s", spec.Name, k.Func, fmt.Sprintf(format, args...)))
	}
	byIndex := map[int]mslcheck.Param{}
	for _, p := range k.Buffers() {
		if old, dup := byIndex[p.Index]; dup {
			fail("parameters %s and %s are both at buffer(%d)", old.Name, p.Name, p.Index)
		}
		byIndex[p.Index] = p
	}
	n := len(spec.Args)
	if n+1 >= statusIndex {
		fail("%d arguments and params reach the status index %d", n+1, statusIndex)
	}
	for i, arg := range spec.Args {
		p, ok := byIndex[i]
		switch {
		case !ok:
			fail("argument %d (%s) has no [[buffer(%d)]] parameter", i, arg.Name, i)
		case p.Name != arg.Name:
			fail("[[buffer(%d)]] is named %s, the catalog's argument %d is %s", i, p.Name, i, arg.Name)
		case !strings.HasPrefix(p.Type, "device "):
			fail("argument %s is not in the device address space (%s)", arg.Name, p.Type)
		}
	}
	p, ok := byIndex[n]
	switch {
	case spec.Params == nil && ok:
		fail("[[buffer(%d)]] %s is bound, but the catalog gives no params", n, p.Name)
	case spec.Params != nil && !ok:
		fail("the params %T have no [[buffer(%d)]] parameter", spec.Params, n)
	case spec.Params != nil:
		want := spec.ParamsType().Name()
		m := paramsTypeRE.FindStringSubmatch(p.Type)
		if m == nil || m[1] != want {
			fail("[[buffer(%d)]] %s has type %q, want constant %s&", n, p.Name, p.Type, want)
		}
	}
	for _, p := range k.Buffers() {
		switch {
		case p.Index < n || (p.Index == n && spec.Params != nil):
		case p.Index == statusIndex:
			if p.Name != "status" || p.Type != "device atomic_uint*" {
				fail("[[buffer(%d)]] must be the status record (LOOM_STATUS), got %s %s", statusIndex, p.Type, p.Name)
			}
		default:
			fail("[[buffer(%d)]] %s is not a catalog argument", p.Index, p.Name)
		}
	}
	return errs
}
