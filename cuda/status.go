package cuda

import (
	"fmt"
	"strings"
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
)

// statusCodeNames are the codes' names in the CUDA sources.
var statusCodeNames = map[int]string{
	statusBadIndex: "LOOM_BAD_INDEX",
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
	switch r.code {
	case statusBadIndex:
		arg := "?"
		if i := int(r.arg) - 1; i >= 0 && i < len(args) {
			arg = args[i]
		}
		msg = fmt.Sprintf("%s[%d] = %d is out of range [0, %d)", arg, r.entry, r.value, r.aux)
	default:
		msg = fmt.Sprintf("unexpected status record: code %d, entry %d, value %d, aux %d", r.code, r.entry, r.value, r.aux)
	}
	if r.count > 1 {
		msg += fmt.Sprintf(" (and %d more reports)", r.count-1)
	}
	return fmt.Errorf("cuda kernel %s: %s", kernel, msg)
}
