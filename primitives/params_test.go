package primitives_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/loomrt/loom/primitives"
)

// TestCParamsDecl checks the declaration generated for a params type field
// by field, and that a field the GPU languages cannot share is refused.
func TestCParamsDecl(t *testing.T) {
	got, err := primitives.CParamsDecl(reflect.TypeFor[primitives.ElementwiseParams](), "uint")
	if err != nil {
		t.Fatal(err)
	}
	want := "struct ElementwiseParams {\n  uint N;\n  uint Rank;\n  uint Contiguous;\n  uint Shape[8];\n  uint Strides[3][8];\n};\n" +
		"static_assert(sizeof(ElementwiseParams) == 140, \"ElementwiseParams: layout differs from Go's\");\n\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	type Mixed struct {
		Scale float32
		Index int32
		_     uint32
		Pad   [2]float32
	}
	got, err = primitives.CParamsDecl(reflect.TypeFor[Mixed](), "unsigned int")
	if err != nil {
		t.Fatal(err)
	}
	if want := "struct Mixed {\n  float Scale;\n  int Index;\n  unsigned int pad2;\n  float Pad[2];\n};\n"; !strings.HasPrefix(got, want) {
		t.Fatalf("got\n%s\nwant prefix\n%s", got, want)
	}
	type Bad struct {
		N    uint32
		Flag bool
	}
	if _, err := primitives.CParamsDecl(reflect.TypeFor[Bad](), "uint"); err == nil || !strings.Contains(err.Error(), "field Flag") {
		t.Fatalf("a bool field: got %v, want an error naming field Flag", err)
	}
	if _, err := primitives.CParamsDecls([]primitives.KernelSpec{{Name: "x", Params: Bad{}}}, "uint"); err == nil || !strings.Contains(err.Error(), "not a pointer to a struct") {
		t.Fatalf("params by value: got %v", err)
	}
}
