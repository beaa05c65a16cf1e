package runtime

import (
	"fmt"
	"math/bits"
)

// storage is one device buffer and the arrays that hold it. Several arrays
// share a storage when one is a view of another (Reshape) or when an
// in-place update donates it.
type storage struct {
	buf    Buffer
	size   int64 // capacity: the pool's size class
	refs   int   // evaluated arrays holding it
	held   int   // arrays of the plan being made holding it
	watch  int   // compiled traces that read it as a fixed input (see changed)
	inPool bool
	pinned bool // a constant's buffer in a plan being recorded: not freed by the plan
	// zeroed: the bytes are all zero once the work that used the buffer
	// last has completed (its users leave them so, see
	// primitives.Lowering.NewZeroedScratch); such buffers are pooled apart.
	zeroed bool
	track  bufState // the encoder's hazard tracking: read it through state
	// owner is the replay plan that touched the buffer last and has not
	// yet set track (touch: the index in its touches), see state.
	owner *replayPlan
	touch int
}

// state is s's hazard tracking. A replay sets the tracking of the buffers
// it touches lazily: each stays owned by the plan, and the state its
// latest replay left is computed here when the encoder next needs it. So
// a plan replayed step after step touches only the buffers that change
// every replay (its results and bound inputs), not every weight it reads.
func (s *storage) state() *bufState {
	if r := s.owner; r != nil {
		s.owner, r.claimed = nil, false
		r.touches[s.touch].apply(&s.track, r.cbBase, r.passBase)
	}
	return &s.track
}

// pool keeps freed buffers for reuse, by size class, the zeroed ones apart.
// A buffer may return to
// the pool while device work that uses it is still in flight: the encoder
// orders the next user's accesses after the old ones, exactly as it orders
// any other reuse. Only releasing memory to the device waits for completion.
type pool struct {
	dev       Device
	enc       *encoder
	free      map[poolKey][]*storage
	allocated int64 // device memory held, pooled or in use
	pooled    int64
	limit     int64
	mut       *mutation
	// local, while a plan is being recorded, takes the buffers the plan
	// frees: they become the cache entry's, so only the plan itself may
	// reuse them.
	local map[poolKey][]*storage
}

// poolKey is a pooled buffer's size class and whether it is zeroed.
type poolKey struct {
	size   int64
	zeroed bool
}

// sizeClass rounds n up so that buffers of nearly the same size share a
// class: multiples of 256 bytes up to 4 KiB, then 8 steps per power of two
// (at most 12.5% waste).
func sizeClass(n int64) int64 {
	if n <= 4096 {
		return max(256, (n+255)&^255)
	}
	step := int64(1) << (63 - bits.LeadingZeros64(uint64(n-1)) - 3)
	return (n + step - 1) &^ (step - 1)
}

// get returns a storage of at least n bytes. With idle, it returns only a
// buffer no in-flight work touches, for the host to write.
func (p *pool) get(n int64, idle bool, st *Stats) (*storage, error) {
	c := sizeClass(n)
	if s := p.reuse(poolKey{c, false}, idle, st); s != nil {
		return s, nil
	}
	return p.alloc(c, st)
}

// getZeroed returns a zeroed storage of at least n bytes: a pooled one (the
// encoder orders its new user after the old, which left it zero), else a
// new one that the host fills with zeros. (Not a pooled buffer: one that
// the plan being built freed is idle but will be written by the plan's
// earlier commands.)
func (p *pool) getZeroed(n int64, st *Stats) (*storage, error) {
	c := sizeClass(n)
	if s := p.reuse(poolKey{c, true}, false, st); s != nil {
		return s, nil
	}
	s, err := p.alloc(c, st)
	if err != nil {
		return nil, err
	}
	if err := s.buf.Write(0, make([]byte, c)); err != nil {
		s.buf.Release()
		p.allocated -= c
		return nil, fmt.Errorf("zeroing %d bytes: %w", c, err)
	}
	s.zeroed = true
	return s, nil
}

// reuse takes a pooled storage of key k (from the recording plan's own
// buffers first), or returns nil. With idle, only one no in-flight work
// touches.
func (p *pool) reuse(k poolKey, idle bool, st *Stats) *storage {
	if list := p.local[k]; len(list) > 0 {
		s := list[len(list)-1]
		p.local[k] = list[:len(list)-1]
		return s
	}
	list := p.free[k]
	for i := len(list) - 1; i >= 0; i-- {
		s := list[i]
		if idle && p.enc.busy(s) {
			continue
		}
		p.free[k] = append(list[:i], list[i+1:]...)
		s.inPool = false
		p.pooled -= k.size
		st.BytesReused += k.size
		return s
	}
	return nil
}

// alloc allocates a storage of size class c, within the memory limit.
func (p *pool) alloc(c int64, st *Stats) (*storage, error) {
	if p.limit > 0 && p.allocated+c > p.limit {
		p.trim(p.allocated + c - p.limit)
		if p.allocated+c > p.limit {
			return nil, fmt.Errorf("%w: the limit of %d bytes is too small: %d bytes are held (%d of them pooled and still in use by the device), and %d more are needed",
				ErrMemoryLimit, p.limit, p.allocated, p.pooled, c)
		}
	}
	buf, err := p.dev.NewBuffer(c)
	if err != nil {
		return nil, fmt.Errorf("allocating %d bytes: %w", c, err)
	}
	p.allocated += c
	st.BytesAllocated += c
	return &storage{buf: buf, size: c}, nil
}

// put returns a storage nobody holds to the pool.
func (p *pool) put(s *storage) {
	if s.inPool {
		return
	}
	k := poolKey{s.size, s.zeroed}
	if p.local != nil {
		p.local[k] = append(p.local[k], s)
		return
	}
	if p.mut.freeEarly() {
		// The bug class this mutation stands for: memory given back while a
		// command buffer may still use it.
		s.buf.Release()
		p.allocated -= s.size
		return
	}
	s.inPool = true
	p.pooled += s.size
	p.free[k] = append(p.free[k], s)
}

// trim releases idle pooled buffers until want bytes are freed or none are
// left. Busy ones stay: the device may still use them.
func (p *pool) trim(want int64) {
	for k, list := range p.free {
		keep := list[:0]
		for _, s := range list {
			if want > 0 && !p.enc.busy(s) {
				s.buf.Release()
				p.allocated -= k.size
				p.pooled -= k.size
				want -= k.size
				continue
			}
			keep = append(keep, s)
		}
		p.free[k] = keep
	}
}
