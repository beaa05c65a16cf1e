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
	"sync"
	"time"
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
	PrefixHitRate     float64 `json:"prefix_hit_rate,omitempty"` // in-process server only
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
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	switch {
	case *requests < 1:
		return fmt.Errorf("-requests %d: want at least 1", *requests)
	case *concurrency < 1:
		return fmt.Errorf("-concurrency %d: want at least 1", *concurrency)
	case *rate < 0 || math.IsNaN(*rate) || math.IsInf(*rate, 0):
		return fmt.Errorf("-rate %g: want a finite rate ≥ 0", *rate)
	case *promptLen < 1 || *outputLen < 1 || *prefix < 0:
		return fmt.Errorf("-prompt-len %d, -output-len %d, -shared-prefix %d: want lengths ≥ 1 (the prefix ≥ 0)", *promptLen, *outputLen, *prefix)
	case !(*spread >= 0 && *spread < 1):
		return fmt.Errorf("-spread %g: want 0 ≤ spread < 1", *spread)
	}
	res := serveResult{URL: *url, Requests: *requests, Rate: *rate, Concurrency: *concurrency}
	var hitRate func() float64
	if *url == "" {
		srv, desc, err := sf.build()
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
		hitRate = func() float64 { return srv.Sched.Metrics.Snapshot().HitRate() }
	}

	rng := rand.New(rand.NewPCG(*seed, 2))
	length := func(mean int) int {
		lo, hi := float64(mean)*(1-*spread), float64(mean)*(1+*spread)
		return max(1, int(math.Round(lo+rng.Float64()*(hi-lo))))
	}
	shared := words(rng, *prefix)
	bodies := make([]map[string]any, *requests)
	for i := range bodies {
		bodies[i] = map[string]any{"prompt": shared + words(rng, length(*promptLen)), "max_tokens": length(*outputLen),
			"temperature": *temperature, "seed": i, "stream": true}
	}
	gaps := make([]time.Duration, *requests)
	for i := range gaps {
		if *rate > 0 {
			gaps[i] = time.Duration(rng.ExpFloat64() / *rate * float64(time.Second))
		}
	}

	stats := make([]streamStats, *requests)
	errs := make([]error, *requests)
	slots := make(chan struct{}, *concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i, b := range bodies {
		time.Sleep(gaps[i])
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			stats[i], errs[i] = streamCompletion(res.URL+"/v1/completions", b)
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()

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
	res.TTFTp50ms, res.TTFTp99ms = percentile(ttft, 50), percentile(ttft, 99)
	res.TPOTp50ms, res.TPOTp99ms = percentile(tpot, 50), percentile(tpot, 99)
	if hitRate != nil {
		res.PrefixHitRate = hitRate()
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Println(string(b))
	} else {
		if res.Server != "" {
			fmt.Printf("server: in-process on %s (%s)\n", res.URL, res.Server)
		}
		fmt.Printf("%d requests (%d failed) in %.2f s at rate %g/s, concurrency ≤ %d: %d prompt and %d output tokens\n",
			res.Requests, res.Failed, res.Seconds, res.Rate, res.Concurrency, res.PromptTokens, res.OutputTokens)
		fmt.Printf("%.2f requests/s, %.1f output tokens/s\nTTFT p50 %.1f ms, p99 %.1f ms\nTPOT p50 %.2f ms, p99 %.2f ms\n",
			res.RequestsPerSecond, res.OutputTokensPerS, res.TTFTp50ms, res.TTFTp99ms, res.TPOTp50ms, res.TPOTp99ms)
		if hitRate != nil {
			fmt.Printf("prefix cache hit rate %.3f\n", res.PrefixHitRate)
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
