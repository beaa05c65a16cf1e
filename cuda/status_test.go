package cuda

import (
	"strings"
	"testing"

	"github.com/loomrt/loom/primitives"
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

// TestMetadataErrors: each attention and KV-write report decodes to the
// message the CPU device gives for the same bad entry.
func TestMetadataErrors(t *testing.T) {
	ap := &primitives.PagedAttentionParams{NumSeqs: 2, NumTokens: 3, BlockSize: 8, NumBlocks: 10, MaxBlocksPerSeq: 3, MaxSeqLen: 24}
	kp := &primitives.KVWriteParams{NumTokens: 4, NumSlots: 32}
	fp := &primitives.QKNormRoPEKVWriteParams{NumTokens: 4, NumSlots: 32}
	for _, c := range []struct {
		name   string
		w      []uint32
		params any
		want   string
	}{
		{"cu start", record(1, statusCuStart, 6, 0, 1, 0), ap, "cu_seqlens_q[0] = 1, want 0"},
		{"cu decreasing", record(1, statusCuDecreasing, 6, 2, 3, 4), ap, "cu_seqlens_q[2] = 3 is less than cu_seqlens_q[1] = 4 (sequence 1)"},
		{"cu last", record(1, statusCuLast, 6, 2, 2, 3), ap, "cu_seqlens_q[2] = 2, want the number of query tokens, 3"},
		{"seq_len negative", record(1, statusSeqLen, 5, 1, -2, 0), ap, "seq_lens[1] = -2 is negative"},
		{"seq_len past max", record(1, statusSeqLen, 5, 1, 25, 0), ap, "seq_lens[1] = 25 exceeds max_seq_len 24"},
		{"block table", record(1, statusBlockTable, 4, 3, 10, 5), ap, "block_tables[1,0] = 10 out of range [0,10) (sequence 1, seq_len 5)"},
		{"block table, later entry", record(1, statusBlockTable, 4, 2, -1, 20), ap, "block_tables[0,2] = -1 out of range [0,10) (sequence 0, seq_len 20)"},
		{"slot range", record(1, statusSlotRange, 5, 1, 40, 32), kp, "slot_mapping[1] = 40 out of range: the cache has 32 slots"},
		{"slot dup", record(1, statusSlotDup, 5, 2, 9, 1), kp, "slot_mapping[2] = 9 is also slot_mapping[1]"},
		{"fused slot range", record(1, statusSlotRange, 7, 1, 40, 32), fp, "slot_mapping[1] = 40 out of range: the cache has 32 slots"},
		{"fused slot dup", record(1, statusSlotDup, 7, 2, 9, 1), fp, "slot_mapping[2] = 9 is also slot_mapping[1]"},
		// Records that do not fit their params are reported as such.
		{"entry past the tables", record(1, statusBlockTable, 4, 6, 10, 5), ap, "unexpected status record: code 6, entry 6"},
		{"cu entry past the offsets", record(1, statusCuLast, 6, 3, 2, 3), ap, "unexpected status record: code 4"},
		{"dup of a later slot", record(1, statusSlotDup, 5, 2, 9, 3), kp, "unexpected status record: code 8"},
		{"slot past the tokens", record(1, statusSlotRange, 5, 4, 40, 32), kp, "unexpected status record: code 7"},
		{"fused slot past the tokens", record(1, statusSlotRange, 7, 4, 40, 32), fp, "unexpected status record: code 7"},
	} {
		err := statusError("k", nil, c.params, c.w)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
