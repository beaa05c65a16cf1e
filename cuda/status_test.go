package cuda

import (
	"strings"
	"testing"
)

// record encodes a status record as a kernel leaves it.
func record(count, code, arg, entry uint32, value, aux int64) []uint32 {
	w := make([]uint32, statusWords)
	w[0], w[2], w[3], w[6] = count, code, arg, entry
	w[8], w[9] = uint32(uint64(value)), uint32(uint64(value)>>32)
	w[10], w[11] = uint32(uint64(aux)), uint32(uint64(aux)>>32)
	return w
}

func TestStatusError(t *testing.T) {
	args := []string{"table", "indices", "out"}
	if err := statusError("k", args, nil, make([]uint32, statusWords)); err != nil {
		t.Fatalf("an empty record: %v", err)
	}
	for _, c := range []struct {
		w    []uint32
		want string
	}{
		{record(1, statusBadIndex, 2, 3, 10, 10), "cuda kernel k: indices[3] = 10 is out of range [0, 10)"},
		{record(1, statusBadIndex, 2, 7, 1<<40, 10), "indices[7] = 1099511627776 is out of range [0, 10)"},
		{record(3, statusBadIndex, 2, 0, -5, 4), "indices[0] = -5 is out of range [0, 4) (and 2 more reports)"},
		{record(1, 99, 1, 0, 0, 0), "unexpected status record: code 99"},
	} {
		err := statusError("k", args, nil, c.w)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one containing %q", err, c.want)
		}
	}
}

func TestStatusDefines(t *testing.T) {
	if d := statusDefines(); !strings.Contains(d, "#define LOOM_BAD_INDEX 1\n") {
		t.Errorf("defines:\n%s", d)
	}
}
