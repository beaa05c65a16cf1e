package cpu

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/loomrt/loom/primitives"
)

// Kernel is a CPU kernel: a Go function that performs one dispatch.
//
// A kernel must give the same result whatever the number of workers: each
// output element is computed by one piece of work, with a fixed order of
// accumulation. Checking mode compares results bit for bit across schedules.
type Kernel func(c *Call) error

// Call is one dispatch as a kernel sees it.
type Call struct {
	Grid, Group primitives.Dim3
	Args        []Arg // buffer arguments in binding order
	Params      any   // the dispatch's params struct pointer, or nil
	workers     int
}

// Arg is a buffer argument: the bytes of the bound range.
type Arg struct {
	Bytes  []byte
	Access primitives.Access
	Name   string
}

// F32 views argument i as float32s.
func (c *Call) F32(i int) []float32 { return view[float32](c.Args[i].Bytes) }

// U16 views argument i as uint16s (float16 and bfloat16 storage).
func (c *Call) U16(i int) []uint16 { return view[uint16](c.Args[i].Bytes) }

// I32 views argument i as int32s.
func (c *Call) I32(i int) []int32 { return view[int32](c.Args[i].Bytes) }

// I64 views argument i as int64s.
func (c *Call) I64(i int) []int64 { return view[int64](c.Args[i].Bytes) }

// U32 views argument i as uint32s.
func (c *Call) U32(i int) []uint32 { return view[uint32](c.Args[i].Bytes) }

// U8 is argument i's bytes (bool storage).
func (c *Call) U8(i int) []uint8 { return c.Args[i].Bytes }

// view reinterprets b as elements of type T. Buffers are 64-byte aligned and
// the runtime binds element-aligned offsets.
func view[T any](b []byte) []T {
	var z T
	n := len(b) / int(unsafe.Sizeof(z))
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Workers is the number of goroutines the kernel may use.
func (c *Call) Workers() int { return max(c.workers, 1) }

// Parallel calls fn over [0, n) split into contiguous chunks of at least
// grain items, one chunk per worker at most, and waits for all of them.
func (c *Call) Parallel(n, grain int, fn func(lo, hi int)) {
	Parallel(c.Workers(), n, grain, fn)
}

// ParallelFine is Parallel with up to fineChunks chunks a worker, still run
// by at most Workers goroutines at once: the ones that start early or are
// not descheduled take more of them. With one chunk a worker, a worker
// that starts late, or loses its core to another process in the middle of
// its chunk, holds up the whole call for that long; on the shared
// development machine the callers of the quantized GEMVs waited so for
// 5–30 ms of a 75–150 ms decode step (docs/BENCHMARKS.md). It suits work
// whose pieces cost the same and need no setup each, such as the rows of
// a GEMV.
func (c *Call) ParallelFine(n, grain int, fn func(lo, hi int)) {
	parallel(c.Workers(), fineChunks, n, grain, fn)
}

// fineChunks is how many chunks a worker ParallelFine splits into at most.
const fineChunks = 8

// Parallel splits [0, n) into at most workers chunks of at least grain items
// and runs fn on each, concurrently, returning when all are done.
//
// The caller and the process's helper goroutines share the chunks: each
// takes the next chunk not yet taken until none is left, so the caller never
// waits for a helper that has not started, and a slow chunk does not hold
// back the others. The helpers persist and spin briefly between dispatches,
// watching a counter, instead of parking: a decode step is hundreds of short
// parallel dispatches back to back, and waking a parked thread for each
// (tens of microseconds on a VM) cost more than the small ones take. A
// helper that finds no work for a while parks until the next call. There
// are as many helpers as the widest call has needed, up to GOMAXPROCS−1.
func Parallel(workers, n, grain int, fn func(lo, hi int)) {
	parallel(workers, 1, n, grain, fn)
}

// parallel is Parallel with up to perWorker chunks a worker, taken by at
// most workers goroutines (the caller and workers−1 helpers).
func parallel(workers, perWorker, n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := min(workers*perWorker, (n+grain-1)/grain)
	if workers <= 1 || chunks <= 1 {
		fn(0, n)
		return
	}
	per := (n + chunks - 1) / chunks
	chunks = (n + per - 1) / per
	j := &parJob{fn: fn, n: n, per: per, chunks: int32(chunks), helpers: int32(min(workers, chunks) - 1)}
	helpers.add(j)
	j.work()
	// The chunks the others took may still be running. A chunk that itself
	// calls Parallel takes its own call's chunks, so nothing here waits on
	// a chunk nobody has taken.
	yield := time.Now().Add(yieldEvery)
	for polls := 1; j.done.Load() < j.chunks; polls++ {
		if polls%clockPolls == 0 && time.Now().After(yield) {
			goruntime.Gosched()
			yield = time.Now().Add(yieldEvery)
		}
	}
	helpers.remove(j)
	// A kernel bug in a helper must fail the dispatch (the device recovers
	// panics on the calling goroutine), not crash the process.
	if p := j.panicked.Load(); p != nil {
		panic(p)
	}
}

// parJob is one Parallel call: its chunks, the next one to take, how many
// are done, and the first panic of a chunk.
type parJob struct {
	fn       func(lo, hi int)
	n, per   int
	chunks   int32
	helpers  int32        // helpers that may take chunks
	joined   atomic.Int32 // helpers that have come to take chunks
	next     atomic.Int32
	done     atomic.Int32
	panicked atomic.Pointer[chunkPanic]
}

// chunkPanic is a chunk's panic, with the stack where it happened: Parallel
// raises it again on the caller's goroutine, whose stack does not show the
// chunk's.
type chunkPanic struct {
	value any
	stack []byte
}

// panicError turns a recovered panic r of what (a kernel, say) into an
// error that shows where it happened: the chunk's stack for a chunk's
// panic, else the recovering goroutine's (called from the deferred
// function, it includes the panicking frames).
func panicError(what string, r any) error {
	if p, ok := r.(*chunkPanic); ok {
		return fmt.Errorf("%s panicked: %v\n%s", what, p.value, p.stack)
	}
	return fmt.Errorf("%s panicked: %v\n%s", what, r, debug.Stack())
}

// work runs the job's chunks not yet taken, one at a time.
func (j *parJob) work() {
	for {
		c := j.next.Add(1) - 1
		if c >= j.chunks {
			return
		}
		j.run(int(c))
	}
}

func (j *parJob) run(c int) {
	defer j.done.Add(1)
	defer func() {
		if r := recover(); r != nil {
			p, ok := r.(*chunkPanic) // from a nested Parallel: keep its stack
			if !ok {
				p = &chunkPanic{r, debug.Stack()}
			}
			j.panicked.CompareAndSwap(nil, p)
		}
	}()
	lo := c * j.per
	j.fn(lo, min(lo+j.per, j.n))
}

// helperPool is the process's helper goroutines, started as needed, and the
// Parallel calls in progress.
type helperPool struct {
	mu      sync.Mutex
	started int
	parked  int
	wake    *sync.Cond
	jobs    atomic.Pointer[[]*parJob] // replaced, never changed in place
	gen     atomic.Uint64             // counts the calls added
}

var helpers = func() *helperPool {
	p := &helperPool{}
	p.wake = sync.NewCond(&p.mu)
	p.jobs.Store(new([]*parJob))
	return p
}()

// helperSpin is how long a helper keeps looking for work before it parks.
const helperSpin = 200 * time.Microsecond

// yieldEvery is how often a spinning goroutine (a helper looking for work,
// or a Parallel caller waiting for its chunks) gives its thread to other
// runnable goroutines, such as the host encoding the next command buffer;
// it looks at the clock every clockPolls empty polls. Yielding on every
// poll sent each spinning helper through the scheduler's global lock: with
// 16 workers half the CPU time of a decode step went to that lock.
const (
	yieldEvery = 20 * time.Microsecond
	clockPolls = 64
)

// add publishes j to the helpers, starting more if j has more chunks than
// there are helpers, and waking as many parked ones as it can use.
func (p *helperPool) add(j *parJob) {
	p.mu.Lock()
	for p.started < max(min(int(j.helpers), goruntime.GOMAXPROCS(0)-1), 1) {
		p.started++
		go p.loop()
	}
	old := *p.jobs.Load()
	jobs := make([]*parJob, len(old), len(old)+1)
	copy(jobs, old)
	jobs = append(jobs, j)
	p.jobs.Store(&jobs)
	p.gen.Add(1)
	for range min(p.parked, int(j.helpers)) {
		p.wake.Signal()
	}
	p.mu.Unlock()
}

// remove withdraws a finished job.
func (p *helperPool) remove(j *parJob) {
	p.mu.Lock()
	old := *p.jobs.Load()
	jobs := make([]*parJob, 0, len(old))
	for _, o := range old {
		if o != j {
			jobs = append(jobs, o)
		}
	}
	p.jobs.Store(&jobs)
	p.mu.Unlock()
}

// help runs chunks of the jobs in progress until none has any left that
// it may take, and reports whether it ran any. A helper joins a job once:
// it leaves only when the job has no chunks left.
func (p *helperPool) help() bool {
	ran := false
	for again := true; again; {
		again = false
		for _, j := range *p.jobs.Load() {
			if j.next.Load() < j.chunks && j.joined.Add(1) <= j.helpers {
				j.work()
				ran, again = true, true
			}
		}
	}
	return ran
}

func (p *helperPool) loop() {
	for {
		seen := p.gen.Load()
		p.help()
		now := time.Now()
		park, yield := now.Add(helperSpin), now.Add(yieldEvery)
		for polls := 1; ; polls++ {
			if g := p.gen.Load(); g != seen {
				seen = g
				if p.help() {
					now = time.Now()
					park, yield = now.Add(helperSpin), now.Add(yieldEvery)
				}
				continue
			}
			if polls%clockPolls != 0 {
				continue
			}
			if now = time.Now(); now.After(park) {
				break
			}
			if now.After(yield) {
				goruntime.Gosched()
				yield = time.Now().Add(yieldEvery)
			}
		}
		p.mu.Lock()
		for p.gen.Load() == seen {
			p.parked++
			p.wake.Wait()
			p.parked--
		}
		p.mu.Unlock()
	}
}

var registry sync.Map // kernel name → Kernel

// Register makes k the CPU kernel for dispatches named name. Custom
// primitives register their kernels this way, usually from an init function.
// Registering a name twice is an error.
func Register(name string, k Kernel) error {
	if k == nil {
		return fmt.Errorf("cpu: nil kernel for %q", name)
	}
	if _, dup := registry.LoadOrStore(name, k); dup {
		return fmt.Errorf("cpu: kernel %q is already registered", name)
	}
	return nil
}

// mustRegister registers a built-in kernel; a duplicate is a bug in this
// package.
func mustRegister(name string, k Kernel) {
	if err := Register(name, k); err != nil {
		panic(err)
	}
}

// Lookup returns the CPU kernel registered under name: what the CPU
// device runs for it, and what a device without kernels of its own (the
// fake of the Metal layer) runs in its place.
func Lookup(name string) (Kernel, bool) {
	k, ok := registry.Load(name)
	if !ok {
		return nil, false
	}
	return k.(Kernel), true
}

func init() {
	mustRegister(primitives.CopyKernel, func(c *Call) error {
		p := c.Params.(*primitives.CopyParams)
		src, dst := c.Args[0].Bytes, c.Args[1].Bytes
		n := int(p.Bytes)
		if n > len(src) || n > len(dst) {
			return fmt.Errorf("copy of %d bytes from %d into %d", n, len(src), len(dst))
		}
		c.Parallel(n, 1<<16, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
		return nil
	})
}
