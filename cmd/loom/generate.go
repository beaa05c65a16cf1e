package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/primitives"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

// defaultModel is the tiny model the repository ships, relative to the
// repository root (where `make run` runs).
const defaultModel = "testdata/tiny-qwen3"

const defaultPrompt = "// Package ring implements operations on circular lists.\npackage ring\n\n"

func init() {
	commands["generate"] = command{"generate text with a Qwen3 model (default: the shipped tiny model, on the CPU)", runGenerate}
}

func runGenerate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	dir := fs.String("model", defaultModel, "Qwen3 model directory (config.json and *.safetensors)")
	prompt := fs.String("prompt", defaultPrompt, "prompt text (models with a tokenizer Loom implements: "+tokenizer.BytesFile+" or byte-level BPE "+tokenizer.HFFile+")")
	promptIDs := fs.String("prompt-ids", "", "prompt as comma-separated token ids (any model; output is printed as ids)")
	maxTokens := fs.Int("max-tokens", 200, "tokens to generate")
	temperature := fs.Float64("temperature", 0.7, "sampling temperature; 0 is greedy")
	topK := fs.Int("top-k", 40, "sample from the K most likely tokens; 0 for all")
	topP := fs.Float64("top-p", 0.95, "sample from the smallest set of tokens of this total probability; 1 for all")
	minP := fs.Float64("min-p", 0, "sample from the tokens at least this fraction as likely as the most likely; 0 for all")
	penalty := fs.Float64("repetition-penalty", 1, "divide the positive logits (multiply the negative ones) of recent tokens by this; 1 is off")
	window := fs.Int("repetition-window", model.DefaultPenaltyWindow, "how many of the latest tokens the repetition penalty sees")
	seed := fs.Uint64("seed", 1, "sampling seed")
	dtypeName := fs.String("dtype", "", "compute dtype: float32, bfloat16 or float16 (default: the weights')")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal")
	check := fs.Bool("check", false, "run on the checking CPU device and report hazards")
	blockSize := fs.Int("block-size", 16, blockSizeHelp)
	stepStats := fs.Bool("step-stats", false, "print every step's statistics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dt := graph.Invalid
	if *dtypeName != "" {
		var err error
		if dt, err = graph.ParseDType(*dtypeName); err != nil {
			return err
		}
	}
	sampling := ops.Sampling{Temperature: float32(*temperature), TopK: *topK, TopP: float32(*topP), MinP: float32(*minP),
		RepetitionPenalty: float32(*penalty), Seed: *seed}
	if err := sampling.Validate(); err != nil {
		return err
	}
	if *maxTokens < 1 {
		return fmt.Errorf("-max-tokens %d: want at least 1", *maxTokens)
	}
	if err := checkBlockSize(*blockSize); err != nil {
		return err
	}
	if *window < 1 {
		return fmt.Errorf("-repetition-window %d: want at least 1", *window)
	}

	rt, where, hazards, err := openRuntime(*device, *check, runtime.Options{})
	if err != nil {
		return err
	}
	// The config and tokenizer are checked before the weights are read.
	c, err := model.LoadConfig(*dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && *dir == defaultModel {
			return fmt.Errorf("%w (run from the repository root, or pass -model DIR)", err)
		}
		return err
	}
	ids, echo, out, err := promptTokens(*dir, c, *prompt, *promptIDs)
	if err != nil {
		return err
	}
	loadStart := time.Now()
	m, err := model.Load(rt, *dir, dt)
	if err != nil {
		return err
	}
	fmt.Printf("model %s: Qwen3, %d layers, hidden %d, %d/%d heads of %d, vocab %d, %.1f M parameters, %s (%.1f MB), loaded in %v\n",
		*dir, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.VocabSize, float64(c.Params())/1e6, m.DType,
		float64(m.WeightBytes())/1e6, time.Since(loadStart).Round(time.Millisecond))

	ctx := len(ids) + *maxTokens
	if ctx > c.MaxPositionEmbeddings {
		return fmt.Errorf("%d prompt tokens + %d new tokens exceed the model's %d positions", len(ids), *maxTokens, c.MaxPositionEmbeddings)
	}
	e, err := model.NewEngine(m, (ctx+*blockSize-1) / *blockSize, *blockSize)
	if err != nil {
		return err
	}
	fmt.Printf("device: %s; KV cache %d blocks of %d tokens (%.1f MB)\n",
		where, e.Cache.Config().NumBlocks, *blockSize, float64(e.Cache.Config().Bytes())/1e6)
	fmt.Printf("prompt: %d tokens; prefilling…\n\n%s", len(ids), echo)

	var steps []*model.StepResult
	start := time.Now()
	var ttft time.Duration
	_, err = e.Generate(0, ids, model.GenerateOptions{MaxTokens: *maxTokens, Sampling: sampling, PenaltyWindow: *window, StopAtEOS: true,
		OnToken: func(tok int32, r *model.StepResult) error {
			if len(steps) == 0 {
				ttft = time.Since(start)
			}
			steps = append(steps, r)
			if c.IsEOS(int(tok)) {
				return nil
			}
			fmt.Print(out.Add(tok))
			if *stepStats {
				fmt.Fprintf(os.Stderr, "\n[step %d: %v; %v]\n", len(steps), r.Time.Round(time.Microsecond), r.Stats)
			}
			return nil
		}})
	total := time.Since(start)
	fmt.Println(out.Flush())
	if err != nil {
		return err
	}
	printGenerateSummary(steps, ttft, total)
	if *check {
		hz := hazards()
		fmt.Printf("checking device: %d hazards\n", len(hz))
		if len(hz) > 0 {
			return fmt.Errorf("hazard: %v", hz[0])
		}
	}
	return nil
}

var blockSizeHelp = fmt.Sprintf("KV cache block size in tokens: one of %v", primitives.AttentionBlockSizes)

// checkBlockSize rejects a -block-size paged attention does not support,
// before anything divides by it.
func checkBlockSize(n int) error {
	if !slices.Contains(primitives.AttentionBlockSizes, n) {
		return fmt.Errorf("-block-size %d: supported sizes are %v", n, primitives.AttentionBlockSizes)
	}
	return nil
}

// openRuntime returns a runtime on the named device, a description of it,
// and the hazards the checking CPU device has found (none elsewhere).
func openRuntime(device string, check bool, opts runtime.Options) (*runtime.Runtime, string, func() []cpu.Hazard, error) {
	if device == "cpu" {
		rt, dev, err := newCPURuntime(check, opts)
		where := fmt.Sprintf("CPU, %d workers", dev.Workers())
		if check {
			where += ", checking mode"
		}
		return rt, where, dev.Hazards, err
	}
	if check {
		return nil, "", nil, fmt.Errorf("-check runs on the CPU device only")
	}
	dev, err := openDevice(device)
	if err != nil {
		return nil, "", nil, err
	}
	rt, err := runtime.New(dev, opts)
	return rt, device, func() []cpu.Hazard { return nil }, err
}

// newCPURuntime returns a runtime on the CPU device, in checking mode if
// asked.
func newCPURuntime(check bool, opts runtime.Options) (*runtime.Runtime, *cpu.Device, error) {
	dev := cpu.New(cpu.Options{Check: check})
	rt, err := runtime.New(dev, opts)
	return rt, dev, err
}

// tokenPrinter turns generated ids, one at a time, into what to print.
type tokenPrinter interface {
	Add(id int32) string
	Flush() string
}

// idPrinter prints ids as numbers.
type idPrinter struct{}

func (idPrinter) Add(id int32) string { return fmt.Sprintf("%d ", id) }
func (idPrinter) Flush() string       { return "" }

// promptTokens returns the prompt's token ids, the prompt to echo, and how
// to print tokens: as text with the model's tokenizer (never half a UTF-8
// character), or as ids.
func promptTokens(dir string, c model.Config, text, idList string) ([]int32, string, tokenPrinter, error) {
	if idList != "" {
		var ids []int32
		for _, f := range strings.Split(idList, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil || id < 0 || int(id) >= c.VocabSize {
				return nil, "", nil, fmt.Errorf("-prompt-ids: %q is not a token id in [0, %d)", f, c.VocabSize)
			}
			ids = append(ids, int32(id))
		}
		var echo strings.Builder
		for _, id := range ids {
			echo.WriteString(idPrinter{}.Add(id))
		}
		return ids, echo.String(), idPrinter{}, nil
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w (use -prompt-ids)", err)
	}
	ids, err := tok.Encode(text)
	if err != nil {
		return nil, "", nil, fmt.Errorf("-prompt: %w", err)
	}
	if c.BOSTokenID >= 0 {
		ids = append([]int32{int32(c.BOSTokenID)}, ids...)
	}
	if len(ids) == 0 {
		return nil, "", nil, fmt.Errorf("empty prompt")
	}
	return ids, text, tokenizer.NewStreamDecoder(tok), nil
}

// printGenerateSummary prints latency, throughput and the runtime's
// statistics of the prefill step and the mean of the decode steps. A
// decode step's time runs from one token's delivery to the next: the next
// step's building and submitting, and the wait for this one.
func printGenerateSummary(steps []*model.StepResult, ttft, total time.Duration) {
	fmt.Printf("\n%d tokens in %v: TTFT %v", len(steps), total.Round(time.Millisecond), ttft.Round(time.Microsecond))
	dec := steps[1:]
	if len(dec) == 0 {
		fmt.Println()
		return
	}
	var sum time.Duration
	var st runtime.Stats
	for _, r := range dec {
		sum += r.Time
		st.Dispatches += r.Stats.Dispatches
		st.CommandBuffers += r.Stats.CommandBuffers
		st.HostWaits += r.Stats.HostWaits
		st.Nodes += r.Stats.Nodes
		st.Plan += r.Stats.Plan
		st.Encode += r.Stats.Encode
		st.Wait += r.Stats.Wait
	}
	n := len(dec)
	tpot := sum / time.Duration(n)
	fmt.Printf(", TPOT %v, %.1f tokens/s\n", tpot.Round(time.Microsecond), float64(n)/sum.Seconds())
	p := steps[0].Stats
	fmt.Printf("prefill step: %d nodes, %d dispatches, %d command buffers, %d host waits\n", p.Nodes, p.Dispatches, p.CommandBuffers, p.HostWaits)
	per := func(v int) float64 { return float64(v) / float64(n) }
	mean := func(d time.Duration) time.Duration { return (d / time.Duration(n)).Round(time.Microsecond) }
	fmt.Printf("decode steps (mean of %d): %.0f nodes, %.0f dispatches, %.1f command buffers, %.2f host waits per step; plan %v, encode %v, device wait %v, graph build, token read-back and the rest %v\n",
		n, per(st.Nodes), per(st.Dispatches), per(st.CommandBuffers), per(st.HostWaits),
		mean(st.Plan), mean(st.Encode), mean(st.Wait), mean(sum-st.Plan-st.Encode-st.Wait))
}
