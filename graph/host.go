package graph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// FromBytes returns a constant array holding raw little-endian element bytes.
// The slice is not copied; the caller must not modify it before evaluation.
func FromBytes(dtype DType, data []byte, shape ...int) *Array {
	pc := Caller(0)
	spec := Spec{DType: dtype, Shape: append([]int(nil), shape...)}
	if err := checkHost(spec, len(data), pc); err != nil {
		return Failed(err, spec)
	}
	return newConstant(spec, data, pc)
}

func checkHost(spec Spec, nbytes int, pc uintptr) error {
	if !spec.DType.valid() {
		return Errorf(pc, "constant", "invalid dtype %v", spec.DType)
	}
	if err := CheckShape(spec.DType, spec.Shape); err != nil {
		return Errorf(pc, "constant", "%v", err)
	}
	if int64(nbytes) != spec.Bytes() {
		return Errorf(pc, "constant", "%d bytes of data for shape %v of %s (%d bytes)", nbytes, spec.Shape, spec.DType, spec.Bytes())
	}
	return nil
}

func constant(dtype DType, shape []int, n int, pc uintptr, fill func(b []byte)) *Array {
	spec := Spec{DType: dtype, Shape: append([]int(nil), shape...)}
	if shape == nil {
		spec.Shape = []int{n}
	}
	if n != spec.Size() {
		return Failed(Errorf(pc, "constant", "%d values for shape %v (%d elements)", n, shape, spec.Size()), spec)
	}
	if err := checkHost(spec, int(spec.Bytes()), pc); err != nil {
		return Failed(err, spec)
	}
	b := make([]byte, spec.Bytes())
	fill(b)
	return newConstant(spec, b, pc)
}

// FromFloat32s returns a float32 constant. With no shape it is a vector.
func FromFloat32s(data []float32, shape ...int) *Array {
	return fromFloat32s(Caller(0), Float32, data, shape)
}

// FromFloat32sAs returns a constant of float dtype dt, rounding the values
// to nearest even when dt is float16 or bfloat16.
func FromFloat32sAs(dt DType, data []float32, shape ...int) *Array {
	return fromFloat32s(Caller(0), dt, data, shape)
}

// fromFloat32s takes the pc of the exported constructor's caller, so that
// errors name the user's call site.
func fromFloat32s(pc uintptr, dt DType, data []float32, shape []int) *Array {
	if !dt.IsFloat() {
		return Failed(Errorf(pc, "constant", "FromFloat32sAs needs a float dtype, got %s", dt), Spec{DType: dt, Shape: shape})
	}
	return constant(dt, shapeOrNil(shape), len(data), pc, func(b []byte) { PutFloat32s(dt, b, data) })
}

// FromInt32s returns an int32 constant. With no shape it is a vector.
func FromInt32s(data []int32, shape ...int) *Array {
	return constant(Int32, shapeOrNil(shape), len(data), Caller(0), func(b []byte) {
		for i, v := range data {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		}
	})
}

// FromInt64s returns an int64 constant. With no shape it is a vector.
func FromInt64s(data []int64, shape ...int) *Array {
	return constant(Int64, shapeOrNil(shape), len(data), Caller(0), func(b []byte) {
		for i, v := range data {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
	})
}

// FromUint32s returns a uint32 constant. With no shape it is a vector.
func FromUint32s(data []uint32, shape ...int) *Array {
	return constant(Uint32, shapeOrNil(shape), len(data), Caller(0), func(b []byte) {
		for i, v := range data {
			binary.LittleEndian.PutUint32(b[4*i:], v)
		}
	})
}

// FromBools returns a bool constant. With no shape it is a vector.
func FromBools(data []bool, shape ...int) *Array {
	return constant(Bool, shapeOrNil(shape), len(data), Caller(0), func(b []byte) {
		for i, v := range data {
			if v {
				b[i] = 1
			}
		}
	})
}

// Scalar returns a rank-0 constant of dtype dt holding v (converted).
func Scalar(dt DType, v float64) *Array {
	pc := Caller(0)
	if !dt.valid() {
		return Failed(Errorf(pc, "constant", "invalid dtype %v", dt), Spec{DType: dt})
	}
	return constant(dt, []int{}, 1, pc, func(b []byte) { putScalar(dt, b, v) })
}

// Full returns a constant of the given dtype and shape with every element v.
func Full(dt DType, v float64, shape ...int) *Array {
	pc := Caller(0)
	if !dt.valid() {
		return Failed(Errorf(pc, "constant", "invalid dtype %v", dt), Spec{DType: dt, Shape: shape})
	}
	n := NumElements(shape)
	return constant(dt, append([]int{}, shape...), n, pc, func(b []byte) {
		sz := dt.Size()
		if len(b) == 0 {
			return
		}
		putScalar(dt, b[:sz], v)
		for i := sz; i < len(b); i *= 2 {
			copy(b[i:], b[:i])
		}
	})
}

func shapeOrNil(shape []int) []int {
	if len(shape) == 0 {
		return nil
	}
	return shape
}

func putScalar(dt DType, b []byte, v float64) {
	switch dt {
	case Float32, Float16, BFloat16:
		PutFloat32s(dt, b, []float32{float32(v)})
	case Int32:
		binary.LittleEndian.PutUint32(b, uint32(int32(v)))
	case Int64:
		binary.LittleEndian.PutUint64(b, uint64(int64(v)))
	case Uint32:
		binary.LittleEndian.PutUint32(b, uint32(v))
	case Bool:
		if v != 0 {
			b[0] = 1
		}
	}
}

// PutFloat32s stores values into b as float dtype dt.
func PutFloat32s(dt DType, b []byte, values []float32) {
	switch dt {
	case Float32:
		for i, v := range values {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
	case Float16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(b[2*i:], F32ToF16(v))
		}
	case BFloat16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(b[2*i:], F32ToBF16(v))
		}
	}
}

// DecodeFloat64s converts elements of dtype dt in b to float64. Booleans are
// 0 or 1.
func DecodeFloat64s(dt DType, b []byte) []float64 {
	n := len(b) / max(dt.Size(), 1)
	out := make([]float64, n)
	for i := range out {
		switch dt {
		case Float32:
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		case Float16:
			out[i] = float64(F16ToF32(binary.LittleEndian.Uint16(b[2*i:])))
		case BFloat16:
			out[i] = float64(BF16ToF32(binary.LittleEndian.Uint16(b[2*i:])))
		case Int32:
			out[i] = float64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		case Int64:
			out[i] = float64(int64(binary.LittleEndian.Uint64(b[8*i:])))
		case Uint32:
			out[i] = float64(binary.LittleEndian.Uint32(b[4*i:]))
		case Bool:
			if b[i] != 0 {
				out[i] = 1
			}
		}
	}
	return out
}

// Bytes returns a copy of the array's element bytes. The array must be a
// constant or evaluated; reading waits for the work that produces it.
func (a *Array) Bytes() ([]byte, error) {
	s := a.loadState()
	switch {
	case a.err != nil:
		return nil, a.err
	case s.overwritten:
		return nil, a.OverwrittenError("read")
	case s.data != nil:
		b := make([]byte, a.spec.Bytes())
		if err := s.data.Read(b); err != nil {
			return nil, err
		}
		return b, nil
	case s.host != nil || a.spec.Bytes() == 0:
		return append([]byte(nil), s.host...), nil
	}
	return nil, Errorf(a.pc, "read", "array %s has not been evaluated; pass it to Eval first", a.spec)
}

// Float64s returns the elements converted to float64.
func (a *Array) Float64s() ([]float64, error) {
	b, err := a.Bytes()
	if err != nil {
		return nil, err
	}
	return DecodeFloat64s(a.spec.DType, b), nil
}

// Float32s returns the elements of a float array as float32.
func (a *Array) Float32s() ([]float32, error) {
	if !a.spec.DType.IsFloat() {
		return nil, a.readErr("Float32s", "a float dtype")
	}
	f, err := a.Float64s()
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(f))
	for i, v := range f {
		out[i] = float32(v)
	}
	return out, nil
}

// Int32s returns the elements of an int32 array.
func (a *Array) Int32s() ([]int32, error) {
	if a.spec.DType != Int32 {
		return nil, a.readErr("Int32s", "int32")
	}
	b, err := a.Bytes()
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// Int64s returns the elements of an int64 array.
func (a *Array) Int64s() ([]int64, error) {
	if a.spec.DType != Int64 {
		return nil, a.readErr("Int64s", "int64")
	}
	b, err := a.Bytes()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(b)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out, nil
}

// Bools returns the elements of a bool array.
func (a *Array) Bools() ([]bool, error) {
	if a.spec.DType != Bool {
		return nil, a.readErr("Bools", "bool")
	}
	b, err := a.Bytes()
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(b))
	for i, v := range b {
		out[i] = v != 0
	}
	return out, nil
}

func (a *Array) readErr(method, want string) error {
	if a.err != nil {
		return a.err
	}
	return fmt.Errorf("%s: %s needs %s, array is %s", a.Site(), method, want, a.spec)
}
