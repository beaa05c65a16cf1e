package ops_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGuideListsEveryOp holds docs/GUIDE.md's op index to package ops:
// every exported function is listed as `ops.Name(`, and every ops function
// the guide names exists.
func TestGuideListsEveryOp(t *testing.T) {
	guide, err := os.ReadFile("../docs/GUIDE.md")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range pkgs["ops"].Files {
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.IsExported() {
				exported[fn.Name.Name] = true
			}
		}
	}
	if len(exported) < 40 {
		t.Fatalf("found only %d exported ops functions", len(exported))
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bops\.([A-Z]\w*)\(`).FindAllStringSubmatch(string(guide), -1) {
		named[m[1]] = true
	}
	for fn := range exported {
		if !named[fn] {
			t.Errorf("docs/GUIDE.md does not list ops.%s", fn)
		}
	}
	for fn := range named {
		if !exported[fn] {
			t.Errorf("docs/GUIDE.md names ops.%s, which package ops does not export", fn)
		}
	}
}
