package graph

import "fmt"

// DType is the element type of an array.
type DType uint8

// The element types Loom stores. Float16 and BFloat16 are storage types: the
// kernels compute in float32 and round on store.
const (
	Invalid DType = iota
	Float32
	Float16
	BFloat16
	Int32
	Int64
	Uint32
	Bool
)

// DTypes lists every valid element type, in declaration order.
var DTypes = []DType{Float32, Float16, BFloat16, Int32, Int64, Uint32, Bool}

var dtypeInfo = [...]struct {
	name, short string
	size        int
}{
	Invalid:  {"invalid", "invalid", 0},
	Float32:  {"float32", "f32", 4},
	Float16:  {"float16", "f16", 2},
	BFloat16: {"bfloat16", "bf16", 2},
	Int32:    {"int32", "i32", 4},
	Int64:    {"int64", "i64", 8},
	Uint32:   {"uint32", "u32", 4},
	Bool:     {"bool", "b8", 1},
}

func (d DType) valid() bool { return d > Invalid && int(d) < len(dtypeInfo) }

// Size is the number of bytes one element occupies.
func (d DType) Size() int {
	if !d.valid() {
		return 0
	}
	return dtypeInfo[d].size
}

// String is the dtype's full name, such as "bfloat16".
func (d DType) String() string {
	if !d.valid() {
		return fmt.Sprintf("DType(%d)", uint8(d))
	}
	return dtypeInfo[d].name
}

// Short is the dtype's abbreviation used in kernel names, such as "bf16".
func (d DType) Short() string {
	if !d.valid() {
		return "invalid"
	}
	return dtypeInfo[d].short
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == Float32 || d == Float16 || d == BFloat16 }

// IsInteger reports whether d is a signed or unsigned integer type.
func (d DType) IsInteger() bool { return d == Int32 || d == Int64 || d == Uint32 }

// ParseDType returns the dtype with the given full or short name.
func ParseDType(s string) (DType, error) {
	for _, d := range DTypes {
		if s == dtypeInfo[d].name || s == dtypeInfo[d].short {
			return d, nil
		}
	}
	return Invalid, fmt.Errorf("unknown dtype %q", s)
}
