package runtime

import "github.com/loomrt/loom/graph"

// Mutation names for tests that break the runtime on purpose.
const (
	MutDropBarrier   = "drop-barrier"
	MutDropFenceWait = "drop-fence-wait"
	MutFreeEarly     = "free-early"
	MutExemptAlias   = "exempt-alias"
	MutStaleUpload   = "stale-upload"
)

// SetMutation makes rt break the nth occurrence of the named mutation (for
// MutExemptAlias, every occurrence; for MutStaleUpload, the nth upload of
// every replay, and of a compiled step's replay, the upload of its nth
// input).
func SetMutation(rt *Runtime, name string, nth int) {
	kinds := map[string]mutationKind{
		MutDropBarrier:   mutDropBarrier,
		MutDropFenceWait: mutDropFenceWait,
		MutFreeEarly:     mutFreeEarly,
		MutExemptAlias:   mutExemptAlias,
		MutStaleUpload:   mutStaleUpload,
	}
	k, ok := kinds[name]
	if !ok {
		panic("unknown mutation " + name)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.mut = &mutation{kind: k, nth: nth}
	rt.pool.mut = rt.mut
}

// ReadEntries is how many reads the encoder tracks for a's buffer.
func ReadEntries(rt *Runtime, a *graph.Array) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(a.Data().(*arrayData).st.state().reads)
}

// MaxListSets is how many copies of its lists a recorded plan keeps.
const MaxListSets = maxListSets

// ListSets is how many copies of their lists the recorded plans of c's
// traces keep.
func ListSets(c *Compiled) int {
	c.rt.mu.Lock()
	defer c.rt.mu.Unlock()
	n := 0
	for _, tr := range c.traces {
		if tr.plan != nil {
			n += len(tr.plan.sets)
		}
	}
	return n
}
