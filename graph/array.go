// Package graph holds Loom's lazy arrays: the nodes of the graph that model
// code builds. An Array knows its dtype, shape, the primitive that computes it
// and that primitive's inputs; nothing runs until the runtime evaluates it.
//
// The package knows no device and no kernel. The runtime attaches device
// storage to arrays it has evaluated (SetData), after which the array forgets
// its primitive and inputs so that a long history (the KV cache of ten
// thousand decode steps) never stays reachable.
package graph

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync/atomic"
)

// Primitive is what the graph needs to know of the operation that computes an
// array: its name. The primitives package defines the full interface (shape
// rules and lowering to dispatches).
type Primitive interface {
	Name() string
}

// Alias says that output Output of a primitive lives in the buffer of input
// Input. A donating alias writes into the input in place and consumes it: the
// input array may not be used again. A non-donating alias is a view that only
// reads (Reshape).
type Alias struct {
	Output, Input int
	Donate        bool
}

// Aliaser is implemented by primitives whose outputs share input buffers.
type Aliaser interface {
	Aliases() []Alias
}

// Spec is the dtype and shape of an array.
type Spec struct {
	DType DType
	Shape []int
}

// Size is the number of elements.
func (s Spec) Size() int { return NumElements(s.Shape) }

// Bytes is the number of bytes the elements occupy.
func (s Spec) Bytes() int64 { return int64(s.Size()) * int64(s.DType.Size()) }

func (s Spec) String() string { return fmt.Sprintf("%s%v", s.DType, s.Shape) }

// CheckShape reports a negative dimension, or a shape whose element count
// or byte size in dtype dt overflows int64: a product that wrapped would
// describe a small array as if it were this one.
func CheckShape(dt DType, shape []int) error {
	for i, d := range shape {
		switch {
		case d < 0:
			return fmt.Errorf("dimension %d of shape %v is negative", i, shape)
		case d == 0:
			return nil // no elements, whatever the other dimensions
		}
	}
	n := uint64(dt.Size())
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("shape %v of %s overflows: its size in bytes exceeds 2^63-1", shape, dt)
		}
		n = lo
	}
	return nil
}

// NumElements is the product of the dimensions (1 for a scalar).
func NumElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Data is the evaluated storage of an array, owned by the runtime.
type Data interface {
	// Read copies the array's bytes into dst, waiting for the work that
	// produces them if it has not completed.
	Read(dst []byte) error
	// Err is the error of the evaluation that produced the data, once it is
	// known to have failed; nil otherwise. It does not wait.
	Err() error
}

var nextID atomic.Uint64

// Array is a lazy n-dimensional array: a node of the graph.
type Array struct {
	id    uint64
	spec  Spec
	prim  Primitive
	in    []*Array
	sibs  []*Array // all outputs of prim, in order; nil for a single output
	index int      // this array's position in sibs
	err   error
	pc    uintptr

	consumer   *Array // the node that took this array's buffer by donation
	consumerOp string

	// state changes when the runtime uploads, evaluates or overwrites the
	// array, while other goroutines may read it (an op checking a
	// constant's values): it is replaced whole, never modified.
	state atomic.Pointer[arrayState]

	walk      uint64 // the runtime's stamp: see Stamp
	walkIndex int32
}

type arrayState struct {
	host        []byte // a constant's bytes, until the runtime uploads them
	data        Data   // set once evaluated
	overwritten bool   // the donation has run: the buffer holds the consumer's value
}

// newConstant returns a constant array holding host bytes.
func newConstant(spec Spec, host []byte, pc uintptr) *Array {
	a := &Array{id: nextID.Add(1), spec: spec, pc: pc}
	a.state.Store(&arrayState{host: host})
	return a
}

// loadState returns the array's state; the zero state if none was set.
func (a *Array) loadState() arrayState {
	if s := a.state.Load(); s != nil {
		return *s
	}
	return arrayState{}
}

// ID is unique per array and increases in creation order. Since an array's
// inputs always exist before it, sorting by ID is a topological order.
func (a *Array) ID() uint64 { return a.id }

// DType is the element type.
func (a *Array) DType() DType { return a.spec.DType }

// Shape is the array's shape. The caller must not modify it.
func (a *Array) Shape() []int { return a.spec.Shape }

// Spec is the array's dtype and shape.
func (a *Array) Spec() Spec { return a.spec }

// Size is the number of elements.
func (a *Array) Size() int { return a.spec.Size() }

// Ndim is the number of dimensions.
func (a *Array) Ndim() int { return len(a.spec.Shape) }

// Primitive is the operation that computes the array; nil for a constant or
// an evaluated array.
func (a *Array) Primitive() Primitive { return a.prim }

// Inputs are the primitive's inputs; nil once evaluated.
func (a *Array) Inputs() []*Array { return a.in }

// Siblings are all outputs of the array's primitive, the array included;
// nil when the primitive has a single output.
func (a *Array) Siblings() []*Array { return a.sibs }

// OutputIndex is the array's position among its siblings.
func (a *Array) OutputIndex() int { return a.index }

// Err is the array's error state: the first error of the op that built it or
// of any array it depends on, or, once known, the error of the evaluation
// that computed it (see docs/RUNTIME.md, "A failed evaluation").
func (a *Array) Err() error {
	if a.err != nil {
		return a.err
	}
	if d := a.loadState().data; d != nil {
		return d.Err()
	}
	return nil
}

// Site is the file:line of the call that built the array.
func (a *Array) Site() string { return site(a.pc) }

// PC is the program counter of the call that built the array (see Caller),
// for ErrorAt.
func (a *Array) PC() uintptr { return a.pc }

// Consumer is the array that took this one's buffer by donation, or nil.
func (a *Array) Consumer() *Array { return a.consumer }

// Overwritten reports whether a donation has run and reused this array's
// buffer for its consumer's value.
func (a *Array) Overwritten() bool { return a.loadState().overwritten }

// MarkOverwritten records that the donation consuming a has run and drops
// a's storage. For the runtime.
func (a *Array) MarkOverwritten() {
	a.state.Store(&arrayState{overwritten: true})
}

// OverwrittenError is the error for a use, by op, of an overwritten array.
func (a *Array) OverwrittenError(op string) error {
	msg := fmt.Sprintf("array %s was donated to %s at %s, which has overwritten it in place; use that op's result instead",
		a.spec, a.consumerOp, a.consumer.Site())
	if err := a.consumer.Err(); err != nil {
		msg = fmt.Sprintf("array %s was donated to %s at %s, which failed while updating it in place (%v); its result carries that error",
			a.spec, a.consumerOp, a.consumer.Site(), err)
	}
	return &Error{Op: op, Site: site(a.pc), Err: ErrDonated, Msg: msg}
}

// Stamp returns the walk number and index that SetStamp recorded. The
// runtime stamps the arrays of a graph it walks, so that the walk needs no
// map: a stamp with the current walk number means visited. Walk numbers must
// be unique per walk across the process. Not for model code.
func (a *Array) Stamp() (walk uint64, index int32) { return a.walk, a.walkIndex }

// SetStamp records a walk number and an index. For the runtime.
func (a *Array) SetStamp(walk uint64, index int32) { a.walk, a.walkIndex = walk, index }

// Evaluated reports whether the array has storage.
func (a *Array) Evaluated() bool { return a.loadState().data != nil }

// Data is the array's storage once evaluated, else nil.
func (a *Array) Data() Data { return a.loadState().data }

// HostBytes are a constant's bytes before the runtime uploads them. They
// may be read while another goroutine uploads the constant.
func (a *Array) HostBytes() []byte { return a.loadState().host }

// SetData attaches evaluated storage. The array drops its primitive, inputs
// and host bytes: its value no longer depends on them. For the runtime.
func (a *Array) SetData(d Data) {
	a.state.Store(&arrayState{data: d})
	a.prim, a.in, a.sibs = nil, nil, nil
}

func (a *Array) String() string {
	name := "const"
	if a.prim != nil {
		name = a.prim.Name()
	}
	return fmt.Sprintf("%s %s @%s", name, a.spec, a.Site())
}

// New builds the outputs of prim applied to inputs, one array per spec. pc is
// the program counter of the user's call (see Caller); it names the call site
// in errors. If an input carries an error, or has been consumed by a
// donation, every output carries an error instead.
//
// If prim is an Aliaser, its donating aliases consume their inputs here.
func New(prim Primitive, inputs []*Array, specs []Spec, pc uintptr) []*Array {
	var outs []*Array
	if len(specs) == 1 {
		// One allocation for the array and the slice that returns it: this
		// is the common case, and building must stay cheap.
		blk := new(struct {
			a Array
			s [1]*Array
		})
		blk.s[0] = &blk.a
		outs = blk.s[:]
	} else {
		outs = make([]*Array, len(specs))
		for i := range outs {
			outs[i] = new(Array)
		}
	}
	err := CheckInputs(prim.Name(), inputs, pc)
	for i, s := range specs {
		if err != nil {
			break
		}
		if e := CheckShape(s.DType, s.Shape); e != nil {
			err = Errorf(pc, prim.Name(), "output %d: %v", i, e)
		}
	}
	// Reserve consecutive ids so siblings sort together.
	first := nextID.Add(uint64(len(specs))) - uint64(len(specs)) + 1
	for i, s := range specs {
		*outs[i] = Array{id: first + uint64(i), spec: s, prim: prim, in: inputs, index: i, err: err, pc: pc}
	}
	if len(outs) > 1 {
		for _, o := range outs {
			o.sibs = outs
		}
	}
	if err != nil {
		return outs
	}
	if al, ok := prim.(Aliaser); ok {
		for _, x := range al.Aliases() {
			if x.Donate && x.Input < len(inputs) && x.Output < len(outs) {
				inputs[x.Input].consumer = outs[x.Output]
				inputs[x.Input].consumerOp = prim.Name()
			}
		}
	}
	return outs
}

// CheckInputs returns the error that makes a node of op over inputs
// unusable: a nil input, an input in an error state (its error), or an input
// consumed by a donation.
func CheckInputs(op string, inputs []*Array, pc uintptr) error {
	for i, in := range inputs {
		if err := usable(in, op, i, pc); err != nil {
			return err
		}
	}
	return nil
}

func usable(in *Array, op string, i int, pc uintptr) error {
	switch {
	case in == nil:
		return Errorf(pc, op, "input %d is nil", i)
	case in.Err() != nil:
		return in.Err()
	case in.consumer != nil:
		return &Error{Op: op, Site: site(pc), Err: ErrDonated, Msg: fmt.Sprintf("input %d (%s) was donated to %s at %s and may not be used again; use that op's result instead",
			i, in.spec, in.consumerOp, in.consumer.Site())}
	}
	return nil
}

// NewResult returns an evaluated array of the given spec holding d, with no
// primitive: what the runtime computed without a graph node (a compiled
// step's output). The array and its state are one allocation: a replayed
// step makes one every step. For the runtime.
func NewResult(spec Spec, d Data) *Array {
	r := &struct {
		a Array
		s arrayState
	}{a: Array{id: nextID.Add(1), spec: spec}, s: arrayState{data: d}}
	r.a.state.Store(&r.s)
	return &r.a
}

// Failed returns an array in an error state, for ops whose arguments are
// invalid. Shape and dtype are whatever the op could determine.
func Failed(err error, spec Spec) *Array {
	return &Array{id: nextID.Add(1), spec: spec, err: err}
}

// Caller returns the program counter of the caller of the function that calls
// Caller, skip frames further up. Ops call it once per node: resolving a pc to
// file:line is deferred until an error needs it, which keeps building cheap.
func Caller(skip int) uintptr {
	var pcs [1]uintptr
	if runtime.Callers(skip+3, pcs[:]) == 0 {
		return 0
	}
	return pcs[0]
}

func site(pc uintptr) string {
	if pc == 0 {
		return "unknown"
	}
	fr, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	if fr.File == "" {
		return "unknown"
	}
	file := fr.File
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		if j := strings.LastIndexByte(file[:i], '/'); j >= 0 {
			file = file[j+1:]
		}
	}
	return fmt.Sprintf("%s:%d", file, fr.Line)
}

// ErrDonated is the cause of the errors for a use of an array consumed by a
// donation (an in-place update took its buffer).
var ErrDonated = errors.New("array donated to an in-place update")

// Error is an error raised while building or evaluating a graph. It names
// the op and the call site that built the failing node.
type Error struct {
	Op   string
	Site string
	Msg  string
	Err  error // the cause, if any: an error Msg describes, or a sentinel such as ErrDonated
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.Site, e.Op, e.Msg) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorAt returns an *Error for op built at pc, caused by err.
func ErrorAt(pc uintptr, op string, err error) error {
	return &Error{Op: op, Site: site(pc), Msg: err.Error(), Err: err}
}

// Errorf returns an *Error for op built at pc.
func Errorf(pc uintptr, op, format string, args ...any) error {
	return &Error{Op: op, Site: site(pc), Msg: fmt.Sprintf(format, args...)}
}
