package model

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/internal/loomtest"
)

// testTensor is a tensor to write into a test safetensors file.
type testTensor struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// encodeSafetensors returns a safetensors file holding ts, in order.
func encodeSafetensors(ts []testTensor) []byte {
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for _, t := range ts {
		header[t.name] = map[string]any{"dtype": t.dtype, "shape": append([]int{}, t.shape...), "data_offsets": []int{len(data), len(data) + len(t.data)}}
		data = append(data, t.data...)
	}
	h, err := json.Marshal(header)
	if err != nil {
		panic(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

// randomTensor returns a tensor of seeded random values in [-0.5, 0.5)
// stored as dt.
func randomTensor(name string, dt graph.DType, seed uint64, shape ...int) testTensor {
	vals := loomtest.Float32s(loomtest.Rand(seed), graph.NumElements(shape), -0.5, 0.5)
	b := make([]byte, len(vals)*dt.Size())
	graph.PutFloat32s(dt, b, vals)
	names := map[graph.DType]string{graph.Float32: "F32", graph.Float16: "F16", graph.BFloat16: "BF16"}
	return testTensor{name, names[dt], shape, b}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ts := []testTensor{
		randomTensor("b", graph.BFloat16, 1, 3, 5),
		randomTensor("a", graph.Float32, 2, 7),
		{"empty", "F16", []int{0, 4}, nil},
		randomTensor("scalar", graph.Float16, 3),
	}
	path := filepath.Join(dir, "m.safetensors")
	writeFile(t, path, encodeSafetensors(ts))
	f, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := strings.Join(f.Names(), ","), "a,b,empty,scalar"; got != want {
		t.Fatalf("names %s, want %s", got, want)
	}
	for _, tt := range ts {
		info, ok := f.Info(tt.name)
		if !ok {
			t.Fatalf("tensor %s missing", tt.name)
		}
		if info.DType != tt.dtype || len(info.Shape) != len(tt.shape) {
			t.Errorf("%s: dtype %s shape %v, want %s %v", tt.name, info.DType, info.Shape, tt.dtype, tt.shape)
		}
		if got := f.Bytes(info); string(got) != string(tt.data) {
			t.Errorf("%s: bytes differ", tt.name)
		}
	}
}

func TestSafetensorsErrors(t *testing.T) {
	good := encodeSafetensors([]testTensor{randomTensor("w", graph.Float32, 1, 2, 3)})
	hlen := int(binary.LittleEndian.Uint64(good))
	withHeader := func(h string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), append([]byte(h), make([]byte, 24)...)...)
	}
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "truncated: 0 bytes"},
		{"short length", good[:5], "truncated: 5 bytes"},
		{"truncated header", good[:8+hlen/2], "truncated: the header needs"},
		{"truncated data", good[:len(good)-4], `tensor "w": data_offsets [0,24) lie outside the 20-byte data section`},
		{"huge header length", binary.LittleEndian.AppendUint64(nil, 1<<40), "corrupt header: length"},
		{"not JSON", withHeader(`{"w": [}`), "corrupt header"},
		{"unknown dtype", withHeader(`{"w":{"dtype":"F33","shape":[6],"data_offsets":[0,24]}}`), `tensor "w": unknown dtype "F33"`},
		{"size mismatch", withHeader(`{"w":{"dtype":"F32","shape":[5],"data_offsets":[0,24]}}`), "needs 20"},
		{"negative dim", withHeader(`{"w":{"dtype":"F32","shape":[-6],"data_offsets":[0,24]}}`), "dimension 0 is out of range"},
		{"missing field", withHeader(`{"w":{"dtype":"F32","shape":[6]}}`), "data_offsets are all required"},
		{"three offsets", withHeader(`{"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24,24]}}`), "two offsets expected"},
		{"overlap", withHeader(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`), "overlap"},
		{"bad metadata", withHeader(`{"__metadata__":{"a":1}}`), "__metadata__"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			writeFile(t, path, c.file)
			f, err := OpenSafetensors(path)
			if err == nil {
				f.Close()
				t.Fatalf("no error, want one containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q should contain %q and the path", err, c.want)
			}
		})
	}
}

func TestDTypeUnsupported(t *testing.T) {
	if _, err := DType("I8"); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Fatalf("DType(I8) error %v, want unsupported", err)
	}
	for name, want := range map[string]graph.DType{"F32": graph.Float32, "F16": graph.Float16, "BF16": graph.BFloat16} {
		if got, err := DType(name); err != nil || got != want {
			t.Errorf("DType(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}

// FuzzSafetensorsHeader checks that no input makes the parser panic and
// that every header it accepts describes tensors inside the file that
// match their dtype and shape and do not overlap.
func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(encodeSafetensors([]testTensor{randomTensor("w", graph.Float32, 1, 2, 3), randomTensor("b", graph.BFloat16, 2, 4)}))
	f.Add(encodeSafetensors(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		infos, start, err := ParseSafetensorsHeader(b)
		if err != nil {
			return
		}
		if start < 8 || start > int64(len(b)) {
			t.Fatalf("data start %d outside the %d-byte file", start, len(b))
		}
		used := make([]bool, int64(len(b))-start)
		for _, ti := range infos {
			n := int64(safetensorsDTypes[ti.DType])
			for _, d := range ti.Shape {
				n *= int64(d)
			}
			if ti.Begin < 0 || ti.End-ti.Begin != n || start+ti.End > int64(len(b)) {
				t.Fatalf("accepted tensor %+v does not fit the file", ti)
			}
			for i := ti.Begin; i < ti.End; i++ {
				if used[i] {
					t.Fatalf("accepted overlapping tensor %+v", ti)
				}
				used[i] = true
			}
		}
	})
}
