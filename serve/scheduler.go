// Package serve is Loom's OpenAI-compatible HTTP server and the
// continuous-batching scheduler behind it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
)

// Errors of Submit.
var (
	ErrQueueFull    = errors.New("serve: the request queue is full")
	ErrShuttingDown = errors.New("serve: the server is shutting down")
)

// SchedulerConfig sizes a Scheduler.
type SchedulerConfig struct {
	// StepTokens is the per-step token budget: the running decodes (one
	// token each) first, then chunks of waiting prompts up to it.
	StepTokens int
	// MaxQueue is how many requests may wait for admission; Submit
	// answers ErrQueueFull beyond it.
	MaxQueue int
}

// Request is one generation.
type Request struct {
	Prompt    []int32
	MaxTokens int
	Sampling  ops.Sampling
	StopAtEOS bool
}

// Event is one step's news for a request: a drawn token, or the end
// (Done) with the reason ("stop": an EOS; "length": MaxTokens) or an
// error.
type Event struct {
	Token  int32
	Done   bool
	Reason string
	Err    error
}

// job is a request in the scheduler.
type job struct {
	Request
	ctx     context.Context
	seq     int
	blocks  int        // blocks reserved: enough for the prompt and MaxTokens
	fed     int        // prompt tokens in the cache
	last    int32      // the token to feed next, once the prompt is in
	out     int        // tokens drawn
	events  chan Event // buffered for every event, so the loop never blocks
	stop    func() bool
	started time.Time
	lastTok time.Time
}

// Scheduler runs requests on one engine with continuous batching: one
// goroutine owns the engine, and each step feeds every running request's
// last token and chunks of the prompts being prefilled, within the step's
// token budget. A request is admitted when the blocks for its prompt and
// MaxTokens are free (reserved up front, so a step never runs out and
// nothing is preempted; blocks shared through the prefix cache are counted
// in every reservation, which only over-reserves). The prompt tokens whose
// blocks the prefix cache holds are not prefilled again.
type Scheduler struct {
	e       *model.Engine
	cfg     SchedulerConfig
	Metrics *Metrics

	mu        sync.Mutex
	waiting   []*job
	closed    bool // Shutdown has begun: no more Submits
	wake      chan struct{}
	done      chan struct{} // closed when the loop has returned
	abort     chan struct{} // closed when Shutdown's deadline passed
	abortOnce sync.Once
	nRunning  int // len(running), for Submit's metrics
	nextSeq   int // loop only, as the fields below
	reserved  int // blocks reserved by running jobs
	running   []*job
}

// NewScheduler starts a scheduler on e, which it then owns.
func NewScheduler(e *model.Engine, cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.StepTokens < 1 {
		return nil, fmt.Errorf("serve: step token budget %d must be ≥ 1", cfg.StepTokens)
	}
	if cfg.MaxQueue < 1 {
		return nil, fmt.Errorf("serve: queue size %d must be ≥ 1", cfg.MaxQueue)
	}
	s := &Scheduler{e: e, cfg: cfg, Metrics: newMetrics(), wake: make(chan struct{}, 1), done: make(chan struct{}), abort: make(chan struct{})}
	s.setBlocks()
	go s.loop()
	return s, nil
}

// Capacity is the most tokens (prompt and output) one request may take:
// the model's positions, and the whole cache.
func (s *Scheduler) Capacity() int {
	c := s.e.Cache.Config()
	return min(s.e.Model.Config.MaxPositionEmbeddings, c.NumBlocks*c.BlockSize)
}

// Submit queues r. The returned channel delivers its tokens and ends with
// a Done event; cancelling ctx ends the request and frees its blocks at
// the next step boundary (the loop wakes for it).
func (s *Scheduler) Submit(ctx context.Context, r Request) (<-chan Event, error) {
	if len(r.Prompt) == 0 {
		return nil, errors.New("serve: empty prompt")
	}
	if r.MaxTokens < 1 {
		return nil, fmt.Errorf("serve: max_tokens %d must be ≥ 1", r.MaxTokens)
	}
	if r.MaxTokens > s.Capacity()-len(r.Prompt) { // not the sum, which may overflow
		return nil, fmt.Errorf("serve: %d prompt tokens and %d to generate exceed the context of %d tokens", len(r.Prompt), r.MaxTokens, s.Capacity())
	}
	for i, id := range r.Prompt {
		if id < 0 || int(id) >= s.e.Model.Config.VocabSize {
			return nil, fmt.Errorf("serve: prompt token %d is %d, outside the vocabulary [0, %d)", i, id, s.e.Model.Config.VocabSize)
		}
	}
	if err := r.Sampling.Validate(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if r.Sampling.Penalized() {
		return nil, errors.New("serve: repetition, presence and frequency penalties are unsupported")
	}
	bs := s.e.Cache.Config().BlockSize
	j := &job{Request: r, ctx: ctx, blocks: (len(r.Prompt) + r.MaxTokens + bs - 1) / bs, seq: -1, events: make(chan Event, r.MaxTokens+1), started: time.Now()}
	j.stop = context.AfterFunc(ctx, s.poke)
	s.mu.Lock()
	var err error
	switch {
	case s.closed:
		err = ErrShuttingDown
	case len(s.waiting) >= s.cfg.MaxQueue:
		err = ErrQueueFull
	default:
		s.waiting = append(s.waiting, j)
		s.Metrics.setQueue(s.nRunning, len(s.waiting))
	}
	s.mu.Unlock()
	if err != nil {
		j.stop()
		return nil, err
	}
	s.poke()
	return j.events, nil
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ShuttingDown reports whether Shutdown has begun.
func (s *Scheduler) ShuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops taking requests and waits for those queued and running
// to finish; when ctx ends first, it ends them with ctx's error.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.poke()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.abortOnce.Do(func() { close(s.abort) })
		<-s.done
		return ctx.Err()
	}
}

// loop is the goroutine that owns the engine.
func (s *Scheduler) loop() {
	defer close(s.done)
	for {
		select {
		case <-s.abort:
			s.mu.Lock()
			all := append(s.running, s.waiting...)
			s.running, s.waiting, s.nRunning = nil, nil, 0
			s.Metrics.setQueue(0, 0)
			s.mu.Unlock()
			for _, j := range all {
				s.finish(j, Event{Done: true, Err: ErrShuttingDown})
			}
			return
		default:
		}
		s.dropCancelled()
		s.admit()
		if len(s.running) == 0 {
			s.mu.Lock()
			idle := s.closed && len(s.waiting) == 0
			s.mu.Unlock()
			if idle {
				return
			}
			select {
			case <-s.wake:
			case <-s.abort:
			}
			continue
		}
		s.step()
	}
}

// dropCancelled ends the requests whose context is done.
func (s *Scheduler) dropCancelled() {
	s.mu.Lock()
	keep := s.waiting[:0]
	var gone []*job
	for _, j := range s.waiting {
		if j.ctx.Err() != nil {
			gone = append(gone, j)
		} else {
			keep = append(keep, j)
		}
	}
	clear(s.waiting[len(keep):])
	s.waiting = keep
	s.mu.Unlock()
	run := s.running[:0]
	for _, j := range s.running {
		if j.ctx.Err() != nil {
			gone = append(gone, j)
		} else {
			run = append(run, j)
		}
	}
	clear(s.running[len(run):])
	s.running = run
	for _, j := range gone {
		s.finish(j, Event{Done: true, Err: j.ctx.Err()})
	}
}

// admit moves waiting requests, oldest first, to running while their
// blocks are free.
func (s *Scheduler) admit() {
	total := s.e.Cache.Config().NumBlocks
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.waiting) > 0 && s.reserved+s.waiting[0].blocks <= total {
		j := s.waiting[0]
		s.waiting = s.waiting[1:]
		cached, err := s.e.Cache.AddPrompt(s.nextSeq, j.Prompt)
		if err != nil {
			s.mu.Unlock()
			s.finish(j, Event{Done: true, Err: err})
			s.mu.Lock()
			continue
		}
		s.Metrics.addPrompt(len(j.Prompt), cached)
		j.seq, j.fed = s.nextSeq, cached
		s.nextSeq++
		s.reserved += j.blocks
		s.running = append(s.running, j)
	}
	s.nRunning = len(s.running)
	s.Metrics.setQueue(s.nRunning, len(s.waiting))
}

// step runs one engine step: every decode, then prompt chunks within the
// budget.
func (s *Scheduler) step() {
	budget := s.cfg.StepTokens
	var (
		jobs     []*job
		seqs     []int
		tokens   [][]int32
		sampling []ops.Sampling
	)
	add := func(j *job, ts []int32) {
		jobs, seqs, tokens, sampling = append(jobs, j), append(seqs, j.seq), append(tokens, ts), append(sampling, j.Sampling)
		budget -= len(ts)
	}
	for _, j := range s.running {
		if j.fed == len(j.Prompt) {
			add(j, []int32{j.last})
		}
	}
	for _, j := range s.running {
		if j.fed < len(j.Prompt) && budget > 0 {
			n := min(budget, len(j.Prompt)-j.fed)
			add(j, j.Prompt[j.fed:j.fed+n])
		}
	}
	drawn, err := s.e.StepSample(seqs, tokens, sampling)
	if err != nil {
		// An evaluation error leaves the cache spent: end everything
		// running, and reuse none of what it was to write.
		s.e.Cache.ClearPrefixCache()
		for _, j := range s.running {
			s.finish(j, Event{Done: true, Err: err})
		}
		s.running = nil
		return
	}
	now := time.Now()
	var ended []*job
	for i, j := range jobs {
		if j.fed < len(j.Prompt) {
			j.fed += len(tokens[i])
			if j.fed < len(j.Prompt) {
				continue // the token after a partial prompt is not wanted
			}
		}
		tok := drawn[i]
		if tok < 0 {
			ended = append(ended, j)
			s.finish(j, Event{Done: true, Err: fmt.Errorf("serve: no token can be drawn after %d tokens: every logit is -Inf or NaN", j.out)})
			continue
		}
		if j.out == 0 {
			s.Metrics.TTFT.observe(now.Sub(j.started).Seconds())
		} else {
			s.Metrics.TPOT.observe(now.Sub(j.lastTok).Seconds())
		}
		j.lastTok, j.last = now, tok
		j.out++
		s.Metrics.addTokens(1)
		j.events <- Event{Token: tok}
		switch {
		case j.StopAtEOS && s.e.Model.Config.IsEOS(int(tok)):
			ended = append(ended, j)
			s.finish(j, Event{Done: true, Reason: "stop"})
		case j.out == j.MaxTokens:
			ended = append(ended, j)
			s.finish(j, Event{Done: true, Reason: "length"})
		}
	}
	if len(ended) > 0 {
		run := s.running[:0]
		for _, j := range s.running {
			if j.seq >= 0 {
				run = append(run, j)
			}
		}
		clear(s.running[len(run):])
		s.running = run
	}
	s.setBlocks()
	s.mu.Lock()
	s.nRunning = len(s.running)
	s.Metrics.setQueue(s.nRunning, len(s.waiting))
	s.mu.Unlock()
}

func (s *Scheduler) setBlocks() {
	c := s.e.Cache
	s.Metrics.setBlocks(c.UsedBlocks(), c.FreeBlocks(), c.CachedBlocks())
}

// finish frees j's blocks if it was admitted (seq ≥ 0), and sends its
// last event.
func (s *Scheduler) finish(j *job, ev Event) {
	if j.seq >= 0 {
		s.e.Cache.Free(j.seq)
		s.reserved -= j.blocks
	}
	j.seq = -1
	j.stop()
	// The gauges first, so that whoever sees the end sees the blocks free.
	s.setBlocks()
	j.events <- ev
	close(j.events)
}
