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
	pinned bool     // a constant's buffer in a plan being recorded: not freed by the plan
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

// pool keeps freed buffers for reuse, by size class. A buffer may return to
// the pool while device work that uses it is still in flight: the encoder
// orders the next user's accesses after the old ones, exactly as it orders
// any other reuse. Only releasing memory to the device waits for completion.
type pool struct {
	dev       Device
	enc       *encoder
	free      map[int64][]*storage
	allocated int64 // device memory held, pooled or in use
	pooled    int64
	limit     int64
	mut       *mutation
	// local, while a plan is being recorded, takes the buffers the plan
	// frees: they become the cache entry's, so only the plan itself may
	// reuse them.
	local map[int64][]*storage
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
	if list := p.local[c]; len(list) > 0 {
		s := list[len(list)-1]
		p.local[c] = list[:len(list)-1]
		return s, nil
	}
	list := p.free[c]
	for i := len(list) - 1; i >= 0; i-- {
		s := list[i]
		if idle && p.enc.busy(s) {
			continue
		}
		p.free[c] = append(list[:i], list[i+1:]...)
		s.inPool = false
		p.pooled -= c
		st.BytesReused += c
		return s, nil
	}
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
	if p.local != nil {
		p.local[s.size] = append(p.local[s.size], s)
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
	p.free[s.size] = append(p.free[s.size], s)
}

// trim releases idle pooled buffers until want bytes are freed or none are
// left. Busy ones stay: the device may still use them.
func (p *pool) trim(want int64) {
	for c, list := range p.free {
		keep := list[:0]
		for _, s := range list {
			if want > 0 && !p.enc.busy(s) {
				s.buf.Release()
				p.allocated -= c
				p.pooled -= c
				want -= c
				continue
			}
			keep = append(keep, s)
		}
		p.free[c] = keep
	}
}
