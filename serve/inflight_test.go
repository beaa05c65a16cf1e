package serve

import (
	"context"
	"slices"
	"testing"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
)

// TestInFlightAgainstHostSteps checks the scheduler, which keeps a step in
// flight while it builds the next (the next appending its draws on the
// device), against requests run one at a time on another engine with
// every token fed from the host and each step read back before the next
// (Engine.StepSample): the same tokens, for greedy and seeded requests,
// with penalties (which see the token appended on the device) and
// log-probs; first to max_tokens, then with EOS tokens that end about half
// of the requests midway while the others run on (the draw made past an
// EOS is dropped), on a cache that fits them all and on one that preempts.
// Afterwards every block is free and the generated-token counter holds
// exactly the tokens handed out.
func TestInFlightAgainstHostSteps(t *testing.T) {
	newEngine := func(blocks int) *model.Engine {
		rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(rt, tinyModel, graph.Invalid)
		if err != nil {
			t.Fatal(err)
		}
		e, err := model.NewEngine(m, blocks, 16)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ref := newEngine(64)
	_, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 24, MaxQueue: 64}, "")
	bodies := concurrentBodies(16)
	reqs := make([]Request, len(bodies))
	for i, b := range bodies {
		r := Request{MaxTokens: 8 + i%13, StopAtEOS: true}
		if i%5 == 3 {
			r.Logprobs, r.TopLogprobs = true, i%3
		}
		var err error
		if r.Prompt, err = srv.Tok.Encode(b["prompt"].(string)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			r.Sampling = ops.Sampling{Temperature: 0.9, TopP: 0.95, TopK: 40, MinP: 0.02, Seed: uint64(i)}
		}
		if i%4 == 1 {
			r.Penalties = model.Penalties{Repetition: 1.2, Presence: 0.4, Frequency: 0.9}
		}
		reqs[i] = r
	}
	// hostSteps runs r alone on ref: its prompt in one step, then one
	// token a step, each read back before the next step.
	hostSteps := func(r Request) []model.Drawn {
		const seq = 0
		if err := ref.Cache.Add(seq); err != nil {
			t.Fatal(err)
		}
		defer ref.Cache.Free(seq)
		all, feed := slices.Clone(r.Prompt), r.Prompt
		var out []model.Drawn
		for len(out) < r.MaxTokens {
			d, err := ref.StepSample([]int{seq}, [][]int32{feed}, []model.Draw{r.draw(all)})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d[0])
			all, feed = append(all, d[0].Token), []int32{d[0].Token}
			if r.StopAtEOS && ref.Model.Config.IsEOS(int(d[0].Token)) {
				break
			}
		}
		return out
	}
	together := func(s *Scheduler) [][]Event {
		t.Helper()
		chans := make([]<-chan Event, len(reqs))
		for i, r := range reqs {
			ch, err := s.Submit(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			chans[i] = ch
		}
		out := make([][]Event, len(reqs))
		for i, ch := range chans {
			for ev := range ch {
				if ev.Err != nil {
					t.Fatalf("request %d: %v", i, ev.Err)
				}
				if !ev.Done {
					out[i] = append(out[i], ev)
				}
			}
		}
		return out
	}
	check := func(name string, s *Scheduler, eosEnds int) {
		t.Helper()
		before := s.Metrics.Snapshot().Tokens
		got := together(s)
		n, ended := 0, 0
		for i, r := range reqs {
			want := hostSteps(r)
			n += len(got[i])
			if len(want) < r.MaxTokens {
				ended++
			}
			if len(got[i]) != len(want) {
				t.Errorf("%s: request %d: %d tokens, on the host %d", name, i, len(got[i]), len(want))
				continue
			}
			for k, ev := range got[i] {
				w := want[k]
				if ev.Token != w.Token || !closeLogprobs(ev, w) {
					t.Errorf("%s: request %d token %d: %d (%v %v), on the host %d (%v %v)", name, i, k, ev.Token, ev.Logprob, ev.Top, w.Token, w.Logprob, w.Top)
					break
				}
			}
		}
		if ended < eosEnds {
			t.Errorf("%s: %d requests ended at an EOS, want at least %d", name, ended, eosEnds)
		}
		if m := s.Metrics.Snapshot().Tokens - before; m != int64(n) {
			t.Errorf("%s: %d tokens counted, %d handed out", name, m, n)
		}
		waitIdle(t, s)
	}
	srv.Sched.e.Model.Config.EOSTokenIDs, ref.Model.Config.EOSTokenIDs = nil, nil
	check("no EOS", srv.Sched, 0)

	// EOS: the middle token of every other request's output.
	var eos []int
	for i, r := range reqs {
		if i%2 == 0 {
			out := hostSteps(r)
			eos = append(eos, int(out[len(out)/2].Token))
		}
	}
	// Set before any step reads it (Submit orders the loop after it).
	srv.Sched.e.Model.Config.EOSTokenIDs, ref.Model.Config.EOSTokenIDs = eos, eos
	check("EOS", srv.Sched, len(reqs)/2)

	_, small := newTestServer(t, 10, SchedulerConfig{StepTokens: 24, MaxQueue: 64}, "")
	small.Sched.e.Model.Config.EOSTokenIDs = eos
	check("EOS, 10 blocks", small.Sched, len(reqs)/2)
	if small.Sched.Metrics.Snapshot().Preemptions == 0 {
		t.Error("no preemption on 10 blocks")
	}
}

// closeLogprobs reports whether ev's log-probs are w's within 1e-4 (a
// batch and a single row sum in other orders on the CPU).
func closeLogprobs(ev Event, w model.Drawn) bool {
	if len(ev.Top) != len(w.Top) || !(ev.Logprob == w.Logprob || abs32(ev.Logprob-w.Logprob) <= 1e-4) {
		return false
	}
	for i := range ev.Top {
		if ev.Top[i].Token != w.Top[i].Token || abs32(ev.Top[i].Logprob-w.Top[i].Logprob) > 1e-4 {
			return false
		}
	}
	return true
}

func abs32(x float32) float32 { return max(x, -x) }
