package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loomrt/loom/runtime"
)

var reliability = flag.Bool("serve.reliability", false, "TestManyRequests sends 10,000 requests and checks that memory stays flat (the Makefile's reliability run)")

// TestManyRequests sends 10,000 requests (with -serve.reliability; else
// 300, and memory is not checked) to the tiny model over HTTP from 8 clients: random prompts and lengths,
// streaming and not, greedy and seeded, some with penalties, log-probs or
// stop strings, and every 50th disconnected after its first chunk. Every
// 100th is one greedy request whose answer must never change. After the
// run every block is free, and the Go heap and the device memory the
// runtime holds for live arrays are what they were halfway (within 1% of
// the device memory and 2 MiB of heap): the run leaks nothing per request.
// The full run takes about a minute on a 2-core machine (two when it is
// shared), so `make test` runs it once, without the race detector.
func TestManyRequests(t *testing.T) {
	n := 300
	if *reliability {
		n = 10000
	}
	ts, srv := newTestServer(t, 64, SchedulerConfig{StepTokens: 64, MaxQueue: 64}, "")
	url := ts.URL + "/v1/completions"
	golden := map[string]any{"prompt": "package main\n\nfunc main() {\n", "max_tokens": 8, "temperature": 0}
	want, err := complete(url, golden)
	if err != nil {
		t.Fatal(err)
	}
	rt := srv.Sched.e.Model.Runtime()
	const clients = 8
	start := time.Now()
	var heap0, dev0 int64
	// half runs requests [from, to) from the clients.
	half := func(from, to int) {
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(c), uint64(from)))
				for i := from + c; i < to; i += clients {
					if err := oneRequest(url, i, r, golden, want); err != nil {
						errs <- fmt.Errorf("request %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	half(0, n/2)
	waitIdle(t, srv.Sched)
	// The device memory first: it empties the runtime's plan caches and
	// pool, whose size depends on which step structures they happen to
	// hold, so that the heap is measured without them.
	dev0 = liveMemory(rt)
	heap0 = liveHeap()
	half(n/2, n)
	waitIdle(t, srv.Sched)
	dev1 := liveMemory(rt)
	heap1 := liveHeap()
	m := srv.Sched.Metrics.Snapshot()
	t.Logf("%d requests in %v: Go heap %d bytes halfway, %d after; device memory %d halfway, %d after; %d tokens, %d preemptions",
		n, time.Since(start).Round(time.Millisecond), heap0, heap1, dev0, dev1, m.Tokens, m.Preemptions)
	if *reliability && (dev1 > dev0+dev0/100 || heap1 > heap0+2<<20) {
		t.Errorf("memory grew over the second %d requests: device %d to %d bytes, Go heap %d to %d", n-n/2, dev0, dev1, heap0, heap1)
	}
}

// promptWords are the words of TestManyRequests' prompts: random, but
// few, as text repeats its words; so the tokenizer's bounded piece cache
// is full after the first half and the second half measures the server.
var promptWords = func() []string {
	r := rand.New(rand.NewPCG(7, 7))
	words := make([]string, 256)
	for i := range words {
		b := make([]byte, 1+r.IntN(8))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		words[i] = string(b)
	}
	return words
}()

// oneRequest sends request i of TestManyRequests.
func oneRequest(url string, i int, r *rand.Rand, golden map[string]any, want result) error {
	if i%100 == 99 {
		got, err := complete(url, golden)
		if err == nil && got != want {
			err = fmt.Errorf("the golden request gave %+v, want %+v", got, want)
		}
		return err
	}
	var prompt strings.Builder
	for prompt.Len() < 8+r.IntN(56) {
		prompt.WriteString(promptWords[r.IntN(len(promptWords))])
		prompt.WriteByte(' ')
	}
	b := map[string]any{"prompt": prompt.String(), "max_tokens": 1 + r.IntN(12), "stream": r.IntN(2) == 0, "temperature": 0}
	if r.IntN(3) == 0 {
		b["temperature"], b["top_p"], b["seed"] = 0.8, 0.9, i
	}
	if r.IntN(4) == 0 {
		b["frequency_penalty"], b["repetition_penalty"] = 0.5, 1.1
	}
	if r.IntN(5) == 0 {
		b["logprobs"] = r.IntN(4)
	}
	if r.IntN(6) == 0 {
		b["stop"] = []string{" ", "e"}
	}
	if i%50 != 49 {
		_, err := complete(url, b)
		return err
	}
	// A client that goes away after the first chunk.
	b["stream"], b["max_tokens"] = true, 200
	body, _ := json.Marshal(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		return fmt.Errorf("the first chunk: %v", err)
	}
	return nil
}

// liveHeap is the Go heap in use after a collection.
func liveHeap() int64 {
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// liveMemory is the device memory the runtime holds for live arrays, once
// the garbage arrays' cleanups have run and the idle buffers are released.
func liveMemory(rt *runtime.Runtime) int64 {
	for range 2 {
		goruntime.GC()
		time.Sleep(time.Millisecond) // the cleanups run on their own goroutine
	}
	rt.ReleaseMemory()
	held, _ := rt.MemoryInUse()
	return held
}
