package cuda

import (
	"fmt"
	"strings"

	"github.com/loomrt/loom/primitives"
)

// A kernel cannot return an error, so each dispatch gets a status record
// (struct Status in kernels/common.cuh) as its last parameter. A kernel that
// meets bad data — an index outside its table, invalid attention metadata —
// reports it there and skips the work the bad entry would have done. Of all
// reports, the record keeps the one with the smallest key, which kernels
// choose so that the error names the same entry as the CPU device's checks
// (the first in the order they scan), whatever the schedule. When the
// command buffer completes, the device turns the record into its error.

// statusWords is the size of a status record in uint32s: count, lock, code,
// argument index + 1, key (64 bits), entry, padding, value (64 bits), aux
// (64 bits).
const statusWords = 12

// Status codes: what a record reports. They reach the CUDA sources as
// #defines (see statusDefines).
const (
	// statusBadIndex: element entry of argument arg holds value, outside
	// [0, aux).
	statusBadIndex = 1 + iota
	// The attention metadata: cu_seqlens_q[0] = value is not 0;
	// cu_seqlens_q[entry] = value is less than the entry before, aux; the
	// last entry, value, is not the number of query tokens; seq_lens[entry]
	// = value is out of range; block_tables entry entry = value is outside
	// the cache, in a sequence of aux keys.
	statusCuStart
	statusCuDecreasing
	statusCuLast
	statusSeqLen
	statusBlockTable
	// The KV write's slots: slot_mapping[entry] = value is past the cache;
	// slot_mapping[entry] = value is also slot_mapping[aux].
	statusSlotRange
	statusSlotDup
)

// statusCodeNames are the codes' names in the CUDA sources.
var statusCodeNames = map[int]string{
	statusBadIndex:     "LOOM_BAD_INDEX",
	statusCuStart:      "LOOM_CU_START",
	statusCuDecreasing: "LOOM_CU_DECREASING",
	statusCuLast:       "LOOM_CU_LAST",
	statusSeqLen:       "LOOM_SEQ_LEN",
	statusBlockTable:   "LOOM_BLOCK_TABLE",
	statusSlotRange:    "LOOM_SLOT_RANGE",
	statusSlotDup:      "LOOM_SLOT_DUP",
}

// statusDefines declares the status codes for the CUDA sources.
func statusDefines() string {
	var sb strings.Builder
	for code := 1; code <= len(statusCodeNames); code++ {
		fmt.Fprintf(&sb, "#define %s %d\n", statusCodeNames[code], code)
	}
	return sb.String()
}

// statusRecord is a decoded status record.
type statusRecord struct {
	count, code, arg uint32
	entry            uint32
	value, aux       int64
}

func decodeStatus(w []uint32) statusRecord {
	u64 := func(i int) int64 { return int64(uint64(w[i+1])<<32 | uint64(w[i])) }
	return statusRecord{count: w[0], code: w[2], arg: w[3], entry: w[6], value: u64(8), aux: u64(10)}
}

// statusError returns the error a dispatch of kernel reported in its status
// record w, or nil. args are the names of its buffer arguments and params
// its params struct.
func statusError(kernel string, args []string, params any, w []uint32) error {
	r := decodeStatus(w)
	if r.count == 0 {
		return nil
	}
	var msg string
	if r.code == statusBadIndex {
		arg := "?"
		if i := int(r.arg) - 1; i >= 0 && i < len(args) {
			arg = args[i]
		}
		msg = fmt.Sprintf("%s[%d] = %d is out of range [0, %d)", arg, r.entry, r.value, r.aux)
	} else if err := metadataError(r, params); err != nil {
		msg = err.Error()
	} else {
		msg = fmt.Sprintf("unexpected status record: code %d, entry %d, value %d, aux %d", r.code, r.entry, r.value, r.aux)
	}
	if r.count > 1 {
		msg += fmt.Sprintf(" (and %d more reports)", r.count-1)
	}
	return fmt.Errorf("cuda kernel %s: %s", kernel, msg)
}

// metadataError rebuilds the error of an attention-metadata or KV-write
// report by running the primitives' own checks on the smallest input that
// fails the same way: the entries before the reported one valid (zeros, or
// −1 for skipped slots), then the reported value. The message is then the
// CPU device's, word for word, and cannot drift from it. A record that does
// not fit its params (which a correct kernel never leaves) gives nil.
func metadataError(r statusRecord, params any) error {
	n := int(r.entry)
	switch p := params.(type) {
	case *primitives.PagedAttentionParams:
		seqs, maxBlocks := int(p.NumSeqs), int(p.MaxBlocksPerSeq)
		switch {
		case r.code == statusCuStart:
			return primitives.CheckCuSeqlensQ([]int32{int32(r.value)}, int(p.NumTokens))
		case (r.code == statusCuDecreasing || r.code == statusCuLast) && n >= 1 && n <= seqs:
			cu := make([]int32, n+1)
			cu[n] = int32(r.value)
			if r.code == statusCuDecreasing {
				cu[n-1] = int32(r.aux)
			}
			return primitives.CheckCuSeqlensQ(cu, int(p.NumTokens))
		case r.code == statusSeqLen && n < seqs:
			lens := make([]int32, n+1)
			lens[n] = int32(r.value)
			return primitives.CheckSeqLens(lens, int(p.MaxSeqLen), maxBlocks, int(p.BlockSize))
		case r.code == statusBlockTable && maxBlocks > 0 && n < seqs*maxBlocks:
			s := n / maxBlocks
			tables := make([]int32, (s+1)*maxBlocks)
			tables[n] = int32(r.value)
			lens := make([]int32, s+1)
			lens[s] = int32(r.aux)
			return primitives.CheckBlockTables(tables, maxBlocks, lens, int(p.BlockSize), int(p.NumBlocks))
		}
	case *primitives.KVWriteParams:
		return slotError(r, int(p.NumTokens), int(p.NumSlots))
	case *primitives.QKNormRoPEKVWriteParams:
		return slotError(r, int(p.NumTokens), int(p.NumSlots))
	}
	return nil
}

// slotError rebuilds the error of a KV write's slot report (kv_slot in
// common.cuh) for numTokens tokens and a cache of numSlots slots.
func slotError(r statusRecord, numTokens, numSlots int) error {
	n := int(r.entry)
	if n >= numTokens || (r.code == statusSlotDup && (r.aux < 0 || r.aux >= int64(n))) {
		return nil
	}
	slots := make([]int64, n+1)
	for i := range slots {
		slots[i] = -1
	}
	slots[n] = r.value
	switch r.code {
	case statusSlotRange:
		return primitives.CheckSlots(slots, numSlots)
	case statusSlotDup:
		slots[r.aux] = r.value
		return primitives.CheckSlots(slots, numSlots)
	}
	return nil
}
