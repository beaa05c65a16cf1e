package model

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/loomrt/loom/graph"
)

// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON mapping each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the end of the header) plus an optional
// "__metadata__" object of strings, then the tensor bytes.

// maxHeaderBytes bounds the JSON header, as the format's reference
// implementation does, so a corrupt length cannot ask for gigabytes.
const maxHeaderBytes = 100 << 20

// safetensorsDTypes are the element sizes of the format's dtype names.
var safetensorsDTypes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// TensorInfo is one tensor's entry in a safetensors header. Begin and End
// are byte offsets into the file's data section.
type TensorInfo struct {
	Name       string
	DType      string // the format's name, such as "BF16"
	Shape      []int
	Begin, End int64
}

// ParseSafetensorsHeader parses and validates the header of b, a whole
// safetensors file (mapped, not read). It returns the
// tensors sorted by name and the offset of the data section. Every tensor's
// bytes are checked to lie inside the file and to match its dtype and
// shape, and no two tensors may overlap.
func ParseSafetensorsHeader(b []byte) ([]TensorInfo, int64, error) {
	fileSize := int64(len(b))
	if len(b) < 8 {
		return nil, 0, fmt.Errorf("truncated: %d bytes, the header length needs 8", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeaderBytes {
		return nil, 0, fmt.Errorf("corrupt header: length %d is above the limit of %d bytes", n, maxHeaderBytes)
	}
	if int64(n)+8 > fileSize {
		return nil, 0, fmt.Errorf("truncated: the header needs %d bytes, the file has %d", n+8, fileSize)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, 0, fmt.Errorf("corrupt header: %v", err)
	}
	dataStart := int64(n) + 8
	dataSize := fileSize - dataStart
	var infos []TensorInfo
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		if name == "__metadata__" {
			var meta map[string]string
			if err := json.Unmarshal(raw[name], &meta); err != nil {
				return nil, 0, fmt.Errorf("corrupt header: __metadata__ is not an object of strings: %v", err)
			}
			continue
		}
		t, err := parseTensorInfo(name, raw[name], dataSize)
		if err != nil {
			return nil, 0, fmt.Errorf("tensor %q: %v", name, err)
		}
		infos = append(infos, t)
	}
	byStart := slices.Clone(infos)
	slices.SortFunc(byStart, func(x, y TensorInfo) int {
		return cmp.Or(cmp.Compare(x.Begin, y.Begin), cmp.Compare(x.End, y.End))
	})
	for i := 1; i < len(byStart); i++ {
		if p, t := byStart[i-1], byStart[i]; t.Begin < p.End {
			return nil, 0, fmt.Errorf("corrupt header: tensors %q [%d,%d) and %q [%d,%d) overlap", p.Name, p.Begin, p.End, t.Name, t.Begin, t.End)
		}
	}
	return infos, dataStart, nil
}

func parseTensorInfo(name string, raw json.RawMessage, dataSize int64) (TensorInfo, error) {
	var e struct {
		DType   *string  `json:"dtype"`
		Shape   *[]int64 `json:"shape"`
		Offsets *[]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return TensorInfo{}, fmt.Errorf("corrupt header entry: %v", err)
	}
	if e.DType == nil || e.Shape == nil || e.Offsets == nil {
		return TensorInfo{}, fmt.Errorf("corrupt header entry %s: dtype, shape and data_offsets are all required", raw)
	}
	size, ok := safetensorsDTypes[*e.DType]
	if !ok {
		return TensorInfo{}, fmt.Errorf("unknown dtype %q", *e.DType)
	}
	t := TensorInfo{Name: name, DType: *e.DType, Shape: make([]int, len(*e.Shape))}
	nbytes := int64(size)
	for i, d := range *e.Shape {
		if d < 0 || d > math.MaxInt32 {
			return TensorInfo{}, fmt.Errorf("shape %v: dimension %d is out of range", *e.Shape, i)
		}
		t.Shape[i] = int(d)
		if d != 0 && nbytes > math.MaxInt64/d {
			return TensorInfo{}, fmt.Errorf("shape %v is too large", *e.Shape)
		}
		nbytes *= d
	}
	if len(*e.Offsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets %v: two offsets expected", *e.Offsets)
	}
	t.Begin, t.End = (*e.Offsets)[0], (*e.Offsets)[1]
	if t.Begin < 0 || t.End < t.Begin || t.End > dataSize {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d,%d) lie outside the %d-byte data section (truncated or corrupt file)", t.Begin, t.End, dataSize)
	}
	if t.End-t.Begin != nbytes {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d,%d) hold %d bytes, but %s%v needs %d", t.Begin, t.End, t.End-t.Begin, t.DType, t.Shape, nbytes)
	}
	return t, nil
}

// Safetensors is an open safetensors file. Its bytes are memory-mapped
// where the system allows (read-only, so the weights are paged in from the
// file and never copied into the Go heap), and read otherwise.
type Safetensors struct {
	Path      string
	tensors   map[string]TensorInfo
	data      []byte // the whole file
	dataStart int64
	unmap     func() error
}

// OpenSafetensors opens and validates a safetensors file.
func OpenSafetensors(path string) (*Safetensors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, unmap, err := mapFile(f)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	infos, start, err := ParseSafetensorsHeader(data)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	s := &Safetensors{Path: path, tensors: make(map[string]TensorInfo, len(infos)), data: data, dataStart: start, unmap: unmap}
	for _, t := range infos {
		s.tensors[t.Name] = t
	}
	return s, nil
}

// Names lists the file's tensors, sorted.
func (s *Safetensors) Names() []string { return slices.Sorted(maps.Keys(s.tensors)) }

// Info returns a tensor's header entry.
func (s *Safetensors) Info(name string) (TensorInfo, bool) {
	t, ok := s.tensors[name]
	return t, ok
}

// Bytes returns a tensor's bytes: a slice of the mapping, valid until
// Close.
func (s *Safetensors) Bytes(t TensorInfo) []byte {
	return s.data[s.dataStart+t.Begin : s.dataStart+t.End : s.dataStart+t.End]
}

// Close releases the file's mapping. Slices returned by Bytes must not be
// used afterwards.
func (s *Safetensors) Close() error {
	if s.unmap == nil {
		return nil
	}
	err := s.unmap()
	s.unmap, s.data = nil, nil
	return err
}

// DType converts a safetensors dtype name to the Loom dtype a model can
// compute in: F32, F16 and BF16. Other dtypes are unsupported.
func DType(name string) (graph.DType, error) {
	switch name {
	case "F32":
		return graph.Float32, nil
	case "F16":
		return graph.Float16, nil
	case "BF16":
		return graph.BFloat16, nil
	case "U32":
		return graph.Uint32, nil
	}
	return graph.Invalid, fmt.Errorf("dtype %s is unsupported (Loom loads F32, F16 and BF16 weights, and U32 quantized codes)", name)
}

// Tensor is a tensor to write to a safetensors file: its name, the
// format's dtype name (such as "BF16" or "U32"), shape and bytes.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// WriteSafetensors writes the tensors, in the given order, to a new
// safetensors file at path. The header is padded with spaces to a multiple
// of 8 bytes, as the format's reference implementation does, so that the
// data section starts aligned.
func WriteSafetensors(path string, tensors []Tensor) (err error) {
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range tensors {
		size, ok := safetensorsDTypes[t.DType]
		if !ok {
			return fmt.Errorf("safetensors %s: tensor %s: unknown dtype %s", path, t.Name, t.DType)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors %s: tensor %s is given twice", path, t.Name)
		}
		if n := int64(size) * int64(graph.NumElements(t.Shape)); n != int64(len(t.Data)) {
			return fmt.Errorf("safetensors %s: tensor %s %s%v needs %d bytes, has %d", path, t.Name, t.DType, t.Shape, n, len(t.Data))
		}
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": append([]int{}, t.Shape...), "data_offsets": []int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := f.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(h)))); err != nil {
		return err
	}
	if _, err := f.Write(h); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := f.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}
