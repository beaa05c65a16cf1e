package runtime

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Stats describes one Eval.
type Stats struct {
	Nodes            int // primitive applications computed
	Constants        int // constants uploaded
	Dispatches       int
	CommandBuffers   int
	Passes           int
	Barriers         int
	FenceWaits       int
	HostWaits        int
	ScratchBytes     int64 // scratch requested by primitives
	BytesAllocated   int64 // new device memory
	BytesReused      int64 // memory taken from the pool
	Donations        int   // in-place updates that reused their input's buffer
	DonationsRefused int   // in-place updates that had to copy their input first
	Uploads          int   // constants bound by upload commands (a plan recorded or replayed)
	CacheHits        int   // 1 if the Eval replayed a cached plan
	CacheMisses      int   // 1 if it was planned: see Runtime.CacheStats

	// Build is the host time between the previous Eval call returning and
	// this one starting: on a decode loop, the time spent building the graph.
	Build  time.Duration
	Plan   time.Duration // ordering, lowering and allocation
	Encode time.Duration // device calls
	Wait   time.Duration // host blocked waiting for the device

	// Counters are statistics reported by primitives, such as which path each
	// paged attention call took. The replays of one plan share one map: read
	// it, do not modify it.
	Counters map[string]int
}

func (s *Stats) addCounters(c map[string]int) {
	if len(c) == 0 {
		return
	}
	if s.Counters == nil {
		s.Counters = map[string]int{}
	}
	for k, v := range c {
		s.Counters[k] += v
	}
}

// String is a one-line summary.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodes %d, dispatches %d, command buffers %d, passes %d, barriers %d, fence waits %d, host waits %d",
		s.Nodes, s.Dispatches, s.CommandBuffers, s.Passes, s.Barriers, s.FenceWaits, s.HostWaits)
	fmt.Fprintf(&b, ", scratch %d B, allocated %d B, reused %d B, donations %d (refused %d)",
		s.ScratchBytes, s.BytesAllocated, s.BytesReused, s.Donations, s.DonationsRefused)
	if s.CacheHits > 0 {
		b.WriteString(", replayed")
	}
	fmt.Fprintf(&b, ", build %v, plan %v, encode %v, wait %v", s.Build, s.Plan, s.Encode, s.Wait)
	for _, k := range slices.Sorted(maps.Keys(s.Counters)) {
		fmt.Fprintf(&b, ", %s %d", k, s.Counters[k])
	}
	return b.String()
}
