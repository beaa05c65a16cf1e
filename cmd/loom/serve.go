package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/loomrt/loom/chat"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/serve"
	"github.com/loomrt/loom/tokenizer"
)

func init() {
	commands["serve"] = command{"serve a model over an OpenAI-style HTTP API with continuous batching (docs/SERVE.md)", runServe}
}

// serverFlags are the flags that build a server: loom serve's, and loom
// bench serve's for its in-process server.
type serverFlags struct {
	dir, shape, device, dtype     *string
	blockSize, blocks, stepTokens *int
	stepBuckets, queue            *int
}

func addServerFlags(fs *flag.FlagSet, queue int) serverFlags {
	return serverFlags{
		dir:         modelFlag(fs, "model directory (config.json, *.safetensors and a tokenizer; a chat template for /v1/chat/completions)"),
		shape:       fs.String("shape", "", "instead of -model, serve this model shape with seeded random weights (bfloat16 unless -dtype) and a byte tokenizer, built in memory: qwen3-0.6b"),
		device:      fs.String("device", "cpu", "device: cpu, cuda or metal"),
		dtype:       fs.String("dtype", "", "compute dtype: float32, bfloat16 or float16 (default: the weights')"),
		blockSize:   fs.Int("block-size", 16, blockSizeHelp),
		blocks:      fs.Int("blocks", 0, "KV cache blocks shared by all requests (default: 8 contexts of the smaller of 4096 and max_position_embeddings tokens)"),
		stepTokens:  fs.Int("step-tokens", 0, "token budget of one step: the running decodes, then chunks of waiting prompts (0: the device's, 128 on cpu, 256 on a GPU)"),
		stepBuckets: fs.Int("step-buckets", 0, "pad a step's rows and tokens to one of this many sizes per doubling, so that its plan replays (0: no padding)"),
		queue:       fs.Int("queue", queue, "requests that may wait for admission; more are answered 429"),
	}
}

func runServe(args []string) (err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f := addServerFlags(fs, 64)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	drain := fs.Duration("shutdown-timeout", 30*time.Second, "on SIGINT or SIGTERM, how long running requests may take to finish")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	srv, _, desc, err := f.build()
	if err != nil {
		return err
	}
	sched := srv.Sched
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "serving %s on http://%s (%s)\n", srv.Model, ln.Addr(), desc)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(os.Stderr, "shutting down: draining for up to %v\n", *drain)
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	serr := sched.Shutdown(dctx)
	if err := hs.Shutdown(dctx); err != nil {
		return err
	}
	return serr
}

// build loads the model (or builds the -shape) and starts a scheduler on
// it; it returns the runtime it runs on, and desc says where that is and
// how the cache and scheduler are sized.
func (f serverFlags) build() (_ *serve.Server, _ *runtime.Runtime, desc string, err error) {
	dt := graph.Invalid
	if *f.dtype != "" {
		if dt, err = graph.ParseDType(*f.dtype); err != nil {
			return nil, nil, "", err
		}
	}
	if err := checkBlockSize(*f.blockSize); err != nil {
		return nil, nil, "", err
	}
	var c model.Config
	var tok tokenizer.Tokenizer
	var tmpl *chat.Chat
	name := *f.shape
	if *f.shape != "" {
		if *f.dir != "" {
			return nil, nil, "", fmt.Errorf("-model %s and -shape %s: give one", *f.dir, *f.shape)
		}
		if c, err = shapeConfig(*f.shape); err != nil {
			return nil, nil, "", err
		}
		if dt == graph.Invalid {
			dt = graph.BFloat16
		}
		// The bytes of a prompt are its tokens; the rest of the
		// vocabulary decodes as "<|token N|>".
		tok = &tokenizer.Bytes{VocabSize: c.VocabSize}
		fmt.Fprintln(os.Stderr, "a model shape has no chat template: /v1/chat/completions answers 400")
	} else {
		if *f.dir, err = findModel(*f.dir); err != nil {
			return nil, nil, "", err
		}
		name = filepath.Base(*f.dir)
		if c, err = model.LoadConfig(*f.dir); err != nil {
			return nil, nil, "", err
		}
		if tok, err = tokenizer.Load(*f.dir); err != nil {
			return nil, nil, "", err
		}
		tmpl, err = chat.Load(*f.dir)
		if errors.Is(err, chat.ErrNoTemplate) {
			tmpl, err = nil, nil
			fmt.Fprintln(os.Stderr, "the model has no chat template: /v1/chat/completions answers 400")
		}
		if err != nil {
			return nil, nil, "", err
		}
	}
	if *f.blocks == 0 {
		*f.blocks = 8 * min(4096, c.MaxPositionEmbeddings) / *f.blockSize
	}
	if *f.blocks < 1 {
		return nil, nil, "", fmt.Errorf("-blocks %d: want at least 1", *f.blocks)
	}
	rt, where, _, err := openRuntime(*f.device, false, runtime.Options{})
	if err != nil {
		return nil, nil, "", err
	}
	var m *model.Model
	if *f.shape != "" {
		m, err = randomModel(rt, c, dt, 0, 0)
	} else {
		m, err = model.Load(rt, *f.dir, dt)
	}
	if err != nil {
		return nil, nil, "", err
	}
	e, err := model.NewEngine(m, *f.blocks, *f.blockSize)
	if err != nil {
		return nil, nil, "", err
	}
	if *f.stepBuckets < 0 {
		return nil, nil, "", fmt.Errorf("-step-buckets %d: want 0 (no padding) or more", *f.stepBuckets)
	}
	e.StepBuckets = *f.stepBuckets
	budget := *f.stepTokens
	if budget == 0 {
		budget = defaultStepTokens(*f.device)
	}
	sched, err := serve.NewScheduler(e, serve.SchedulerConfig{StepTokens: budget, MaxQueue: *f.queue})
	if err != nil {
		return nil, nil, "", err
	}
	// OpenAI's defaults under the model's generation_config.json (its
	// repetition penalty too, as vLLM's).
	sampling := c.Generation.Apply(ops.Sampling{Temperature: 1})
	srv := &serve.Server{Sched: sched, Tok: tok, Chat: tmpl, Model: name, Sampling: sampling}
	return srv, rt, fmt.Sprintf("%s; %s; KV cache %d blocks of %d tokens, %d tokens a request at most; step budget %d tokens, %d sizes a doubling, queue %d",
		where, m.DType, *f.blocks, *f.blockSize, sched.Capacity(), budget, *f.stepBuckets, *f.queue), nil
}

// defaultStepTokens is a device's per-step token budget where -step-tokens
// leaves it to the device. On the CPU, 128: the tiny model at 32 concurrent
// streams served 4–9 % more tokens a second than with 256, at a lower
// TPOT, and under Poisson arrivals with a lower TTFT p99
// (docs/BENCHMARKS.md, "The per-step token budget"). On a GPU, 256, with
// which an H100 met the serving goal; no other budget has been measured
// there.
func defaultStepTokens(device string) int {
	if device == "cpu" {
		return 128
	}
	return 256
}
