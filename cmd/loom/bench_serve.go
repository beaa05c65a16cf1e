package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/loomrt/loom/cuda"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/serve"

	"golang.org/x/sync/errgroup"
)

func init() {
	benchmarks["serve"] = benchmark{"load generator for loom serve (Poisson arrivals, streaming completions; an in-process server on 127.0.0.1 unless -url): requests/s, output tokens/s, TTFT and TPOT p50/p99", benchServe}
}

// serveResult is what `loom bench serve -json` prints.
type serveResult struct {
	URL               string  `json:"url"`
	Server            string  `json:"server,omitempty"` // the in-process server's setup
	Requests          int     `json:"requests"`
	Failed            int     `json:"failed"`
	Rate              float64 `json:"rate"` // requests/s offered; 0: all at once
	Concurrency       int     `json:"concurrency"`
	Seconds           float64 `json:"seconds"`
	RequestsPerSecond float64 `json:"requests_per_s"`
	OutputTokensPerS  float64 `json:"output_tokens_per_s"`
	PromptTokens      int     `json:"prompt_tokens"`
	OutputTokens      int     `json:"output_tokens"`
	TTFTp50ms         float64 `json:"ttft_p50_ms"`
	TTFTp99ms         float64 `json:"ttft_p99_ms"`
	TPOTp50ms         float64 `json:"tpot_p50_ms"`
	TPOTp99ms         float64 `json:"tpot_p99_ms"`
	// In-process server only, over the timed requests:
	PrefixHitRate   float64 `json:"prefix_hit_rate,omitempty"`
	Steps           int64   `json:"steps,omitempty"`       // engine steps
	MeanBatch       float64 `json:"mean_batch,omitempty"`  // sequences a step
	StepTokens      float64 `json:"step_tokens,omitempty"` // tokens a step (decodes and prompt chunks)
	PlanCacheHits   int     `json:"plan_cache_hits"`       // Evals replayed (runtime.CacheStats)
	PlanCacheMisses int     `json:"plan_cache_misses"`     // Evals planned
	Preemptions     int64   `json:"preemptions"`
	StepMs          float64 `json:"step_ms,omitempty"` // mean time of a step in the engine (submission to tokens on the host; a step is submitted while the one before runs, so they overlap)
	LoopMs          float64 `json:"loop_ms,omitempty"` // mean time between steps' starts (the timed run's seconds over its steps)
	// OutputTokensPerCPUs is the output tokens over the process's CPU
	// time during the timed requests (in process: server and load
	// generator), a figure other processes' load hardly moves.
	OutputTokensPerCPUs float64      `json:"output_tokens_per_cpu_s,omitempty"`
	Kernels             []kernelStat `json:"kernels,omitempty"`  // -kernels: an engine step's GPU time by kernel
	CuBLASLt            string       `json:"cublaslt,omitempty"` // the in-process CUDA device's use of cuBLASLt (its library and rows, or why it is off; its calls)
}

// streamStats is one streamed completion's timing.
type streamStats struct {
	ttft, tpot     time.Duration // tpot: (last − first token) / (tokens − 1); 0 for one token
	prompt, output int
}

func benchServe(args []string) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	url := fs.String("url", "", "a running server's base URL (default: start one in-process on 127.0.0.1 with the flags below)")
	sf := addServerFlags(fs, 1024)
	requests := fs.Int("requests", 64, "requests to send")
	rate := fs.Float64("rate", 0, "mean arrivals per second (Poisson); 0 sends them all at once")
	concurrency := fs.Int("concurrency", 32, "requests in flight at most")
	promptLen := fs.Int("prompt-len", 128, "mean prompt length in bytes of random words (tokens with a byte tokenizer)")
	outputLen := fs.Int("output-len", 64, "mean max_tokens")
	spread := fs.Float64("spread", 0.5, "lengths are uniform in mean·(1 ± spread)")
	prefix := fs.Int("shared-prefix", 0, "bytes of one random prefix every prompt starts with (exercises the prefix cache)")
	temperature := fs.Float64("temperature", 0, "sampling temperature (each request seeded by its index)")
	seed := fs.Uint64("seed", 1, "seed of the arrivals and prompts")
	ignoreEOS := fs.Bool("ignore-eos", false, "send ignore_eos, so that every request generates its max_tokens (random weights draw an EOS now and then)")
	warmup := fs.Int("warmup", 0, "requests sent (as the others, at most -concurrency at once) and waited for before the timed ones")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the requests (load generator and in-process server) to this file")
	kernels := fs.Bool("kernels", false, "profile the timed requests' GPU kernels launch by launch (in-process server on the CUDA device; the profile slows the run, so its throughput is not comparable) and print where an engine step's GPU time goes")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	switch {
	case *requests < 1 || *warmup < 0:
		return fmt.Errorf("-requests %d, -warmup %d: want at least 1 request (warm-up ≥ 0)", *requests, *warmup)
	case *concurrency < 1:
		return fmt.Errorf("-concurrency %d: want at least 1", *concurrency)
	case *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0):
		return fmt.Errorf("-rate %g: want a finite rate ≥ 0", *rate)
	case *promptLen < 1 || *outputLen < 1 || *prefix < 0:
		return fmt.Errorf("-prompt-len %d, -output-len %d, -shared-prefix %d: want lengths ≥ 1 (the prefix ≥ 0)", *promptLen, *outputLen, *prefix)
	case !(*spread >= 0 && *spread < 1):
		return fmt.Errorf("-spread %g: want 0 ≤ spread < 1", *spread)
	case *kernels && (*url != "" || *sf.device != "cuda"):
		return fmt.Errorf("-kernels: the kernel profile needs the in-process server on the CUDA device (-device cuda, no -url)")
	}
	res := serveResult{URL: *url, Requests: *requests, Rate: *rate, Concurrency: *concurrency}
	var counters func() (serve.Snapshot, runtime.CacheStats)
	if *url == "" {
		srv, rt, desc, err := sf.build()
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Sched.Shutdown(ctx)
			hs.Shutdown(ctx)
		}()
		res.URL, res.Server = "http://"+ln.Addr().String(), desc
		counters = func() (serve.Snapshot, runtime.CacheStats) { return srv.Sched.Metrics.Snapshot(), rt.CacheStats() }
	}

	rng := rand.New(rand.NewPCG(*seed, 2))
	length := func(mean int) int {
		lo, hi := float64(mean)*(1-*spread), float64(mean)*(1+*spread)
		return max(1, int(math.Round(lo+rng.Float64()*(hi-lo))))
	}
	shared := words(rng, *prefix)
	bodies := make([]map[string]any, *warmup+*requests)
	for i := range bodies {
		bodies[i] = map[string]any{"prompt": shared + words(rng, length(*promptLen)), "max_tokens": length(*outputLen),
			"temperature": *temperature, "seed": i, "stream": true, "ignore_eos": *ignoreEOS}
	}
	gaps := make([]time.Duration, len(bodies))
	for i := range gaps {
		if *rate > 0 {
			gaps[i] = time.Duration(rng.ExpFloat64() / *rate * float64(time.Second))
		}
	}

	stats := make([]streamStats, len(bodies))
	errs := make([]error, len(bodies))
	send := func(from, to int) {
		var g errgroup.Group
		g.SetLimit(*concurrency) // Go waits for a free slot
		for i := from; i < to; i++ {
			time.Sleep(gaps[i])
			g.Go(func() error {
				stats[i], errs[i] = streamCompletion(res.URL+"/v1/completions", bodies[i])
				return nil // a failed request is counted, the others go on
			})
		}
		g.Wait()
	}
	send(0, *warmup)
	if i := slices.IndexFunc(errs[:*warmup], func(err error) bool { return err != nil }); i >= 0 {
		return fmt.Errorf("warm-up request %d: %w", i, errs[i])
	}
	var snap0 serve.Snapshot
	var cache0 runtime.CacheStats
	if counters != nil {
		snap0, cache0 = counters()
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *kernels {
		if err := startKernelProfile(); err != nil {
			return err
		}
	}
	cpu0, _ := processCPU()
	start := time.Now()
	send(*warmup, len(bodies))
	res.Seconds = time.Since(start).Seconds()
	var profile []cuda.KernelTime
	if *kernels {
		var err error
		if profile, err = stopKernelProfile(); err != nil {
			return err
		}
	}
	cpu1, haveCPU := processCPU()
	stats, errs = stats[*warmup:], errs[*warmup:]

	var ttft, tpot []float64
	var firstErr error
	for i, s := range stats {
		if errs[i] != nil {
			res.Failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("request %d: %w", i, errs[i])
			}
			continue
		}
		res.PromptTokens += s.prompt
		res.OutputTokens += s.output
		ttft = append(ttft, s.ttft.Seconds()*1e3)
		if s.output > 1 {
			tpot = append(tpot, s.tpot.Seconds()*1e3)
		}
	}
	res.RequestsPerSecond = float64(res.Requests-res.Failed) / res.Seconds
	res.OutputTokensPerS = float64(res.OutputTokens) / res.Seconds
	if haveCPU && *url == "" {
		res.OutputTokensPerCPUs = float64(res.OutputTokens) / (cpu1 - cpu0).Seconds()
	}
	res.TTFTp50ms, res.TTFTp99ms = percentile(ttft, 50), percentile(ttft, 99)
	res.TPOTp50ms, res.TPOTp99ms = percentile(tpot, 50), percentile(tpot, 99)
	if counters != nil {
		snap, cache := counters()
		if prompt := snap.PromptTokens - snap0.PromptTokens; prompt > 0 {
			res.PrefixHitRate = float64(snap.ReusedTokens-snap0.ReusedTokens) / float64(prompt)
		}
		res.Steps, res.Preemptions = snap.Steps-snap0.Steps, snap.Preemptions-snap0.Preemptions
		if res.Steps > 0 {
			res.MeanBatch = float64(snap.StepRows-snap0.StepRows) / float64(res.Steps)
			res.StepTokens = float64(snap.StepTokens-snap0.StepTokens) / float64(res.Steps)
			res.StepMs = (snap.StepSeconds - snap0.StepSeconds) * 1e3 / float64(res.Steps)
			res.LoopMs = res.Seconds * 1e3 / float64(res.Steps)
		}
		res.PlanCacheHits, res.PlanCacheMisses = cache.Hits-cache0.Hits, cache.Misses-cache0.Misses
		if *kernels && res.Steps > 0 {
			res.Kernels = kernelStats(profile, int(res.Steps))
		}
	}
	if *url == "" {
		res.CuBLASLt = cudaCuBLASLt()
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Println(string(b))
	} else {
		if res.Server != "" {
			fmt.Printf("server: in-process on %s (%s)\n", res.URL, res.Server)
		}
		if res.CuBLASLt != "" {
			fmt.Println(res.CuBLASLt)
		}
		fmt.Printf("%d requests (%d failed) in %.2f s at rate %g/s, concurrency ≤ %d: %d prompt and %d output tokens\n",
			res.Requests, res.Failed, res.Seconds, res.Rate, res.Concurrency, res.PromptTokens, res.OutputTokens)
		fmt.Printf("%.2f requests/s, %.1f output tokens/s\nTTFT p50 %.1f ms, p99 %.1f ms\nTPOT p50 %.2f ms, p99 %.2f ms\n",
			res.RequestsPerSecond, res.OutputTokensPerS, res.TTFTp50ms, res.TTFTp99ms, res.TPOTp50ms, res.TPOTp99ms)
		if counters != nil {
			fmt.Printf("%d steps: %.1f sequences and %.1f tokens a step; %d preemptions; prefix cache hit rate %.3f\nplan cache: %d steps replayed, %d planned\nstep %.2f ms in the engine, one every %.2f ms\n",
				res.Steps, res.MeanBatch, res.StepTokens, res.Preemptions, res.PrefixHitRate, res.PlanCacheHits, res.PlanCacheMisses, res.StepMs, res.LoopMs)
		}
		if len(res.Kernels) > 0 {
			bw, err := deviceBandwidth("cuda")
			if err != nil {
				return err
			}
			printKernelStats(res.Kernels, fmt.Sprintf("the %d steps of the timed requests", res.Steps), bw.Read)
		}
	}
	if firstErr != nil {
		return fmt.Errorf("%d of %d requests failed; the first: %w", res.Failed, res.Requests, firstErr)
	}
	return nil
}

// words is n bytes of random lowercase words separated by spaces.
func words(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		if rng.IntN(6) == 0 {
			b[i] = ' '
		} else {
			b[i] = byte('a' + rng.IntN(26))
		}
	}
	return string(b)
}

// percentile is the p-th percentile of v (nearest rank), 0 for none.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[max(0, int(math.Ceil(p/100*float64(len(s))))-1)]
}

// streamCompletion posts a streaming completion and times its chunks: the
// first with text is the first token, the last one (with the usage) ends it.
func streamCompletion(url string, body map[string]any) (streamStats, error) {
	b, _ := json.Marshal(body)
	start := time.Now()
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return streamStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e bytes.Buffer
		e.ReadFrom(resp.Body)
		return streamStats{}, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(e.String()))
	}
	var st streamStats
	var first, last time.Time
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var chunk struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return st, fmt.Errorf("chunk %q: %w", data, err)
		}
		if chunk.Error != nil {
			return st, errors.New(chunk.Error.Message)
		}
		now := time.Now()
		if first.IsZero() && len(chunk.Choices) > 0 && chunk.Choices[0].Text != "" {
			first = now
		}
		last = now
		if chunk.Usage != nil {
			st.prompt, st.output = chunk.Usage.PromptTokens, chunk.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if !done {
		return st, errors.New("the stream ended without [DONE]")
	}
	if first.IsZero() {
		first = last // no text (an EOS first): the end is the first token
	}
	st.ttft = first.Sub(start)
	if st.output > 1 {
		st.tpot = last.Sub(first) / time.Duration(st.output-1)
	}
	return st, nil
}
