package runtime

// mutation deliberately breaks the runtime in one way, so that tests can
// show the checking device catches each class of ordering bug. Only tests set
// it (export_test.go); a nil *mutation breaks nothing.
type mutation struct {
	kind mutationKind
	nth  int // break the nth occurrence, from 1
	seen int
}

type mutationKind int

const (
	mutDropBarrier   mutationKind = iota + 1 // leave out one barrier
	mutDropFenceWait                         // leave out one fence wait
	mutFreeEarly                             // release a buffer to the device while work that uses it may run
	mutExemptAlias                           // the seed's bug: an aliased input of a node with scratch is registered as a temporary and dropped from tracking
	mutStaleUpload                           // a replay leaves one constant's upload with the recorded bytes
)

func (m *mutation) hit(k mutationKind) bool {
	if m == nil || m.kind != k {
		return false
	}
	m.seen++
	return m.seen == m.nth
}

func (m *mutation) dropBarrier() bool   { return m.hit(mutDropBarrier) }
func (m *mutation) dropFenceWait() bool { return m.hit(mutDropFenceWait) }
func (m *mutation) freeEarly() bool     { return m.hit(mutFreeEarly) }
func (m *mutation) exemptAlias() bool   { return m != nil && m.kind == mutExemptAlias }

// staleUpload breaks upload i (from 0) of every replay (of a compiled
// step: the upload of input i).
func (m *mutation) staleUpload(i int) bool {
	return m != nil && m.kind == mutStaleUpload && i == m.nth-1
}
