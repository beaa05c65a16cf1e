// Package serve is Loom's OpenAI-compatible HTTP server and the
// continuous-batching scheduler behind it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// MaxTopLogprobs bounds Request.TopLogprobs (OpenAI's top_logprobs).
const MaxTopLogprobs = ops.MaxTopLogprobs

// Request is one generation.
type Request struct {
	Prompt    []int32
	MaxTokens int
	// Sampling draws the tokens; its RepetitionPenalty must be off:
	// Penalties.Repetition replaces it (over the prompt and the output,
	// as vLLM's repetition_penalty).
	Sampling ops.Sampling
	// Penalties' Repetition, Presence and Frequency (model.Penalties;
	// the scheduler fills in its token lists).
	Penalties model.Penalties
	StopAtEOS bool
	// Logprobs asks for each token's log-probability, and TopLogprobs
	// (at most MaxTopLogprobs) for the most likely tokens' at each step.
	Logprobs    bool
	TopLogprobs int
}

// Event is one step's news for a request: a drawn token (with its
// log-probs if the request asked), or the end (Done) with the reason
// ("stop": an EOS; "length": MaxTokens) or an error.
type Event struct {
	Token   int32
	Logprob float32
	Top     []model.TokenLogprob
	Done    bool
	Reason  string
	Err     error
}

// job is a request in the scheduler.
type job struct {
	Request
	ctx     context.Context
	arrival int // Submit's order: the oldest request is admitted first and preempted last
	seq     int
	// all is the prompt and the tokens drawn and read back so far: what
	// the cache must hold before the next token is drawn. A preempted
	// request computes it again, so its draws go on where they stopped.
	all []int32
	fed int // tokens of all in the cache
	// drawIn is the step that draws the job's next token, at its row
	// drawRow: while that step is in flight, the token is on the device
	// only, and the next step appends it from there (model.Row.Prev).
	drawIn  *flight
	drawRow int
	// ahead: the step submitted after drawIn appended that token, so the
	// cache holds it once it is read back into all.
	ahead   bool
	resumed bool       // preempted before: its prompt is counted in the metrics already
	done    bool       // its last event is posted
	events  chan Event // buffered for every event, so the loop never blocks
	stop    func() bool
	started time.Time
	lastTok time.Time
}

// out is the number of tokens drawn.
func (j *job) out() int { return len(j.all) - len(j.Prompt) }

// draw is how r's next token is drawn after the tokens all.
func (r *Request) draw(all []int32) model.Draw {
	d := model.Draw{Sampling: r.Sampling, Penalties: r.Penalties, Logprobs: r.Logprobs, TopLogprobs: r.TopLogprobs}
	d.Penalties.Prompt, d.Penalties.Output = nil, nil
	if d.Penalties.Active() {
		d.Penalties.Prompt, d.Penalties.Output = r.Prompt, all[len(r.Prompt):]
	}
	return d
}

// Scheduler runs requests on one engine with continuous batching: one
// goroutine owns the engine, and each step feeds every running request's
// last token and chunks of the prompts being prefilled, within the step's
// token budget. A request is admitted when the free and cached blocks
// cover its prompt beside what the running requests' prompts still need;
// its cache then grows a block at a time as it generates, and when a step
// finds too few blocks, the request that arrived last is preempted: its
// blocks are freed and it waits again, to compute its prompt and drawn
// tokens again when admitted (recompute), which leaves its output
// unchanged. The prompt tokens whose blocks the prefix cache holds are
// not prefilled again.
//
// One step stays in flight while the next is built, as model.Decoder's:
// step k+1 appends the tokens step k draws on the device (model.Row.Prev)
// and is submitted before step k's tokens are read back; the loop then
// handles step k's tokens (events, EOS, max_tokens, cancellation) one step
// behind the device. A request that step k ends (an EOS, no token) has
// had its token of step k+1 drawn for nothing: the loop ignores that draw,
// and freeing the sequence drops the token step k+1 appended. max_tokens
// is known ahead, so the last token is never appended.
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
	nRunning  int    // len(running), for Submit's metrics
	arrivals  int    // jobs submitted
	nextSeq   int    // loop only, as the fields below
	running   []*job // in admission order
	flight    *flight
	// outbox holds the events of the latest step read back (and of
	// requests ended since), sent once the next round has submitted its
	// step: the host's work for that step comes first, and the handlers
	// then encode and write while the device runs.
	outbox []delivery
}

// flight is a submitted step.
type flight struct {
	sampled *model.Sampled
	jobs    []*job // per row
	wants   []bool // per row: its draw is the job's next token (not the token after a partial prompt)
	tokens  int
	start   time.Time
}

// delivery is an event for a job, to be sent.
type delivery struct {
	j  *job
	ev Event
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
	if r.TopLogprobs > MaxTopLogprobs {
		return nil, fmt.Errorf("serve: %d top log-probs: at most %d", r.TopLogprobs, MaxTopLogprobs)
	}
	if err := s.e.CheckDraw(r.draw(r.Prompt)); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	j := &job{Request: r, ctx: ctx, seq: -1, all: slices.Clone(r.Prompt), events: make(chan Event, r.MaxTokens+1), started: time.Now()}
	j.stop = context.AfterFunc(ctx, s.poke)
	s.mu.Lock()
	var err error
	switch {
	case s.closed:
		err = ErrShuttingDown
	case len(s.waiting) >= s.cfg.MaxQueue:
		err = ErrQueueFull
	default:
		j.arrival = s.arrivals
		s.arrivals++
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

// loop is the goroutine that owns the engine. Each round submits the
// next step, hands out the events the round before found, then reads back
// and handles the step in flight before the new one.
func (s *Scheduler) loop() {
	defer close(s.done)
	defer s.deliver()
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
			if s.flight != nil {
				s.flight.sampled.Wait() // its draws are for requests ended above
				s.flight = nil
			}
			return
		default:
		}
		s.dropCancelled()
		s.admit()
		if len(s.running) == 0 && s.flight == nil {
			s.mu.Lock()
			idle := s.closed && len(s.waiting) == 0
			s.mu.Unlock()
			if idle {
				return
			}
			s.deliver()
			select {
			case <-s.wake:
			case <-s.abort:
			}
			continue
		}
		next, err := s.submit()
		s.deliver()
		if err == nil && s.flight != nil {
			err = s.receive(s.flight)
		}
		if err != nil {
			s.fail(err, s.flight, next)
			next = nil
		}
		s.flight = next
		s.updateQueue()
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

// blocksFor is the number of blocks n tokens take.
func (s *Scheduler) blocksFor(n int) int {
	bs := s.e.Cache.Config().BlockSize
	return (n + bs - 1) / bs
}

// admit moves waiting requests, oldest first, to running while the free
// and cached blocks cover all their known tokens beside the blocks the
// running requests still need for theirs (a prompt's blocks are promised
// when it is admitted; what it generates takes blocks as it comes). A
// prompt's blocks that the prefix cache holds are counted too, so
// admission is cautious when prompts share prefixes.
func (s *Scheduler) admit() {
	c := s.e.Cache
	avail := c.FreeBlocks() + c.CachedBlocks()
	for _, j := range s.running {
		avail -= s.blocksFor(len(j.all)) - s.blocksFor(j.fed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.waiting) > 0 && s.blocksFor(len(s.waiting[0].all)) <= avail {
		j := s.waiting[0]
		s.waiting = s.waiting[1:]
		cached, err := c.AddPrompt(s.nextSeq, j.all)
		if err != nil {
			s.mu.Unlock()
			s.finish(j, Event{Done: true, Err: err})
			s.mu.Lock()
			continue
		}
		if !j.resumed {
			s.Metrics.addPrompt(len(j.Prompt), cached)
		}
		j.seq, j.fed = s.nextSeq, cached
		s.nextSeq++
		avail -= s.blocksFor(len(j.all))
		s.running = append(s.running, j)
	}
	s.nRunning = len(s.running)
	s.Metrics.setQueue(s.nRunning, len(s.waiting))
}

// plan chooses the next step's rows: every decode (a request whose next
// token the step in flight draws, appended from the device unless it is
// the request's last, or a request with one token of all left to feed),
// then chunks of the prompts (or recomputed tokens) still to feed, in
// admission order, up to the budget. It returns them with the blocks
// they need beyond those their sequences hold.
func (s *Scheduler) plan() (f *flight, rows []model.Row, need int) {
	f = &flight{}
	budget := s.cfg.StepTokens
	add := func(j *job, r model.Row, n int, wants bool) {
		r.Seq = j.seq
		if wants {
			r.Draw = j.draw(j.all)
		} else {
			r.Draw = model.Draw{Sampling: j.Sampling} // the token after a partial prompt is not wanted
		}
		rows, f.jobs, f.wants = append(rows, r), append(f.jobs, j), append(f.wants, wants)
		f.tokens += n
		budget -= n
		need += s.blocksFor(j.fed+n) - s.blocksFor(j.fed)
	}
	for _, j := range s.running {
		switch {
		case s.drawing(j):
			if j.out()+1 < j.MaxTokens {
				add(j, model.Row{Prev: s.flight.sampled, PrevRow: j.drawRow}, 1, true)
			}
		case len(j.all)-j.fed == 1:
			add(j, model.Row{Tokens: j.all[j.fed:]}, 1, true)
		}
	}
	for _, j := range s.running {
		if left := len(j.all) - j.fed; left > 1 && budget > 0 {
			n := min(budget, left)
			add(j, model.Row{Tokens: j.all[j.fed : j.fed+n]}, n, j.fed+n == len(j.all))
		}
	}
	return f, rows, need
}

// drawing reports whether the step in flight draws j's next token.
func (s *Scheduler) drawing(j *job) bool { return s.flight != nil && j.drawIn == s.flight }

// preempt frees the blocks of the running request that arrived last and
// puts it back among the waiting ones, in arrival order; admitted again,
// it feeds its prompt and drawn tokens anew. A token the step in flight
// draws for it is read back as any other (before it can be admitted
// again: admission comes after the step is read).
func (s *Scheduler) preempt() {
	last := 0
	for i, j := range s.running {
		if j.arrival > s.running[last].arrival {
			last = i
		}
	}
	j := s.running[last]
	s.running = slices.Delete(s.running, last, last+1)
	s.e.Cache.Free(j.seq)
	j.seq, j.fed, j.resumed = -1, 0, true
	s.Metrics.addPreemption()
	s.mu.Lock()
	at, _ := slices.BinarySearchFunc(s.waiting, j.arrival, func(w *job, a int) int { return w.arrival - a })
	s.waiting = slices.Insert(s.waiting, at, j)
	s.mu.Unlock()
}

// submit plans the next step, preempting the latest arrivals while the
// free and cached blocks are too few for it, and submits it; nil when no
// request has anything to feed (each waits for its last token).
func (s *Scheduler) submit() (*flight, error) {
	f, rows, need := s.plan()
	// The oldest request always fits alone (Submit bounds its tokens by
	// the whole cache), and is never preempted.
	for need > s.e.Cache.FreeBlocks()+s.e.Cache.CachedBlocks() && len(s.running) > 1 {
		s.preempt()
		f, rows, need = s.plan()
	}
	if len(rows) == 0 {
		return nil, nil
	}
	f.start = time.Now()
	var err error
	if f.sampled, err = s.e.StartStepSample(rows); err != nil {
		return nil, err
	}
	for i, j := range f.jobs {
		if rows[i].Prev != nil {
			j.ahead = true
		} else {
			j.fed += len(rows[i].Tokens)
		}
		if f.wants[i] {
			j.drawIn, j.drawRow = f, i
		}
	}
	return f, nil
}

// receive reads a step's draws back and hands them to their requests,
// ending those that reach an EOS or max_tokens. A request ended since
// the step was submitted (cancelled, or ended by the step before) gets
// nothing more.
func (s *Scheduler) receive(f *flight) error {
	drawn, err := f.sampled.Wait()
	s.Metrics.addStep(len(f.jobs), f.tokens, time.Since(f.start))
	if err != nil {
		return err
	}
	now := time.Now()
	ended, tokens := false, 0
	for i, j := range f.jobs {
		if !f.wants[i] || j.done {
			continue
		}
		if j.drawIn == f {
			j.drawIn = nil
		}
		tok := drawn[i].Token
		if tok < 0 {
			ended = true
			s.finish(j, Event{Done: true, Err: fmt.Errorf("serve: no token can be drawn after %d tokens: every logit is -Inf or NaN", j.out())})
			continue
		}
		if j.out() == 0 {
			s.Metrics.TTFT.observe(now.Sub(j.started).Seconds())
		} else {
			s.Metrics.TPOT.observe(now.Sub(j.lastTok).Seconds())
		}
		j.lastTok = now
		j.all = append(j.all, tok)
		if j.ahead {
			j.fed++
			j.ahead = false
		}
		tokens++
		s.post(j, Event{Token: tok, Logprob: drawn[i].Logprob, Top: drawn[i].Top})
		switch {
		case j.StopAtEOS && s.e.Model.Config.IsEOS(int(tok)):
			ended = true
			s.finish(j, Event{Done: true, Reason: "stop"})
		case j.out() == j.MaxTokens:
			ended = true
			s.finish(j, Event{Done: true, Reason: "length"})
		}
	}
	s.Metrics.addTokens(tokens, now)
	if ended {
		s.running = slices.DeleteFunc(s.running, func(j *job) bool { return j.done })
		// A request preempted while its token was drawn waits again.
		s.mu.Lock()
		s.waiting = slices.DeleteFunc(s.waiting, func(j *job) bool { return j.done })
		s.mu.Unlock()
	}
	s.setBlocks()
	return nil
}

// fail ends every request admitted after a step failed to submit or
// evaluate, once the steps still in flight (which inherit the failure)
// are done. An evaluation error leaves the cache spent: reuse none of
// what it was to write.
func (s *Scheduler) fail(err error, flights ...*flight) {
	for _, f := range flights {
		if f != nil {
			f.sampled.Wait()
		}
	}
	s.e.Cache.ClearPrefixCache()
	for _, j := range s.running {
		if !j.done {
			s.finish(j, Event{Done: true, Err: err})
		}
	}
	s.running = nil
	s.mu.Lock()
	s.waiting = slices.DeleteFunc(s.waiting, func(j *job) bool { return j.done })
	s.mu.Unlock()
}

func (s *Scheduler) updateQueue() {
	s.mu.Lock()
	s.nRunning = len(s.running)
	s.Metrics.setQueue(s.nRunning, len(s.waiting))
	s.mu.Unlock()
}

func (s *Scheduler) setBlocks() {
	c := s.e.Cache
	s.Metrics.setBlocks(c.UsedBlocks(), c.FreeBlocks(), c.CachedBlocks())
}

// finish frees j's blocks if it was admitted (seq ≥ 0), and posts its
// last event.
func (s *Scheduler) finish(j *job, ev Event) {
	if j.seq >= 0 {
		s.e.Cache.Free(j.seq)
	}
	j.seq, j.done = -1, true
	j.stop()
	// The gauges first, so that whoever sees the end sees the blocks free.
	s.setBlocks()
	s.post(j, ev)
}

// post queues ev for j, to be sent by deliver.
func (s *Scheduler) post(j *job, ev Event) {
	s.outbox = append(s.outbox, delivery{j, ev})
}

// deliver sends the posted events, in order, closing a job's channel
// after its last.
func (s *Scheduler) deliver() {
	for _, d := range s.outbox {
		d.j.events <- d.ev
		if d.ev.Done {
			close(d.j.events)
		}
	}
	clear(s.outbox)
	s.outbox = s.outbox[:0]
}
