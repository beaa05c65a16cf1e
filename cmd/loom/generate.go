package main

import (
	"encoding/json"
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

const defaultPrompt = "// Package ring implements operations on circular lists.\npackage ring\n\n"

func init() {
	commands["generate"] = command{"generate text with a Qwen3 or Llama model (default: the shipped tiny model, on the CPU)", runGenerate}
}

// stopFlags is the repeatable -stop flag.
type stopFlags []string

func (s *stopFlags) String() string { return fmt.Sprintf("%q", []string(*s)) }
func (s *stopFlags) Set(v string) error {
	if v == "" {
		return fmt.Errorf("an empty stop string")
	}
	*s = append(*s, v)
	return nil
}

// samplingFlags are the sampling flags; generation_config.json's values
// take the place of their defaults, and a flag given on the command line
// wins over both.
type samplingFlags struct {
	temperature, topP, minP, penalty, presence, frequency *float64
	topK                                                  *int
	seed                                                  *uint64
}

func newSamplingFlags(fs *flag.FlagSet) samplingFlags {
	return samplingFlags{
		temperature: fs.Float64("temperature", 0.7, "sampling temperature; 0 is greedy (default: generation_config.json's, else 0.7)"),
		topK:        fs.Int("top-k", 40, "sample from the K most likely tokens; 0 for all (default: generation_config.json's, else 40)"),
		topP:        fs.Float64("top-p", 0.95, "sample from the smallest set of tokens of this total probability; 1 for all (default: generation_config.json's, else 0.95)"),
		minP:        fs.Float64("min-p", 0, "sample from the tokens at least this fraction as likely as the most likely; 0 for all (default: generation_config.json's, else 0)"),
		penalty:     fs.Float64("repetition-penalty", 1, "divide the positive logits (multiply the negative ones) of recent tokens by this; 1 is off (default: generation_config.json's, else 1)"),
		presence:    fs.Float64("presence-penalty", 0, "subtract this from the logits of tokens among the recent ones (OpenAI's presence_penalty); 0 is off"),
		frequency:   fs.Float64("frequency-penalty", 0, "subtract this from a token's logit once for each time it occurs among the recent ones (OpenAI's frequency_penalty); 0 is off"),
		seed:        fs.Uint64("seed", 1, "sampling seed"),
	}
}

// sampling returns the flags' defaults, overridden by g, overridden by the
// flags set on the command line.
func (f samplingFlags) sampling(fs *flag.FlagSet, g model.GenerationConfig) ops.Sampling {
	s := g.Apply(ops.Sampling{Temperature: float32(*f.temperature), TopK: *f.topK, TopP: float32(*f.topP), MinP: float32(*f.minP),
		RepetitionPenalty: float32(*f.penalty), Seed: *f.seed})
	s.PresencePenalty, s.FrequencyPenalty = float32(*f.presence), float32(*f.frequency)
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "temperature":
			s.Temperature = float32(*f.temperature)
		case "top-k":
			s.TopK = *f.topK
		case "top-p":
			s.TopP = float32(*f.topP)
		case "min-p":
			s.MinP = float32(*f.minP)
		case "repetition-penalty":
			s.RepetitionPenalty = float32(*f.penalty)
		}
	})
	return s
}

// describeSampling is the sampling settings as generate and chat print
// them; window is the number of recent tokens the penalties see.
func describeSampling(s ops.Sampling, window int) string {
	return fmt.Sprintf("temperature %g, top-k %d, top-p %g, min-p %g, repetition penalty %g, presence penalty %g, frequency penalty %g over %d tokens, seed %d",
		s.Temperature, s.TopK, s.TopP, s.MinP, s.RepetitionPenalty, s.PresencePenalty, s.FrequencyPenalty, window, s.Seed)
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// generateResult is what generate -json prints.
type generateResult struct {
	PromptIDs    []int32 `json:"prompt_ids"`
	GeneratedIDs []int32 `json:"generated_ids"`
	Text         string  `json:"text"` // empty without a tokenizer
	// Stop is why generation ended: "eos", "stop" (a stop string) or
	// "max_tokens".
	Stop    string  `json:"stop"`
	LoadMS  float64 `json:"load_ms"`
	TTFTMS  float64 `json:"ttft_ms"`
	TPOTMS  float64 `json:"tpot_ms"` // 0 with one generated token
	TotalMS float64 `json:"total_ms"`
}

func runGenerate(args []string) (err error) {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	dir := modelFlag(fs, "Qwen3 or Llama model directory (config.json and *.safetensors)")
	prompt := fs.String("prompt", defaultPrompt, "prompt text (models with a tokenizer Loom implements: "+tokenizer.BytesFile+" or a Hugging Face BPE "+tokenizer.HFFile+")")
	asChat := fs.Bool("chat", false, "the -prompt "+chatHelp+"; the template, not Loom, adds any BOS")
	promptIDs := fs.String("prompt-ids", "", "prompt as comma-separated token ids (any model; output is printed as ids)")
	maxTokens := fs.Int("max-tokens", 200, "tokens to generate")
	sf := newSamplingFlags(fs)
	var stops stopFlags
	fs.Var(&stops, "stop", "end generation when the text contains this string, which is not printed (repeatable)")
	window := fs.Int("repetition-window", model.DefaultPenaltyWindow, "how many of the latest tokens the penalties (repetition, presence, frequency) see")
	dtypeName := fs.String("dtype", "", "compute dtype: float32, bfloat16 or float16 (default: the weights')")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal")
	check := fs.Bool("check", false, "run on the checking CPU device and report hazards")
	blockSize := fs.Int("block-size", 16, blockSizeHelp)
	stepStats := fs.Bool("step-stats", false, "print every step's statistics")
	asJSON := fs.Bool("json", false, "print one JSON object (prompt and generated ids, text, timings) instead of the text")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	if *promptIDs != "" && flagSet(fs, "prompt") {
		return usageErrorf("-prompt and -prompt-ids: give one")
	}
	if *promptIDs != "" && *asChat {
		return usageErrorf("-chat renders text: it does not go with -prompt-ids")
	}
	if *dir, err = findModel(*dir); err != nil {
		return err
	}
	dt, err := checkDecodeFlags(*dtypeName, *maxTokens, *blockSize, *window)
	if err != nil {
		return err
	}
	// The config and tokenizer are checked before the weights are read.
	c, err := model.LoadConfig(*dir)
	if err != nil {
		return err
	}
	sampling := sf.sampling(fs, c.Generation)
	if err := sampling.Validate(); err != nil {
		return err
	}
	promptText := *prompt
	if *asChat {
		if promptText, err = chatPrompt(*dir, promptText); err != nil {
			return err
		}
	}
	ids, tok, err := promptTokens(*dir, c, promptText, *promptIDs, !*asChat)
	if err != nil {
		return err
	}
	if tok == nil && len(stops) > 0 {
		return fmt.Errorf("-stop needs a tokenizer: output from -prompt-ids is token ids")
	}

	rt, where, hazards, err := openRuntime(*device, *check, runtime.Options{})
	if err != nil {
		return err
	}
	loadStart := time.Now()
	m, err := model.Load(rt, *dir, dt)
	if err != nil {
		return err
	}
	loadTime := time.Since(loadStart)
	fmt.Fprintf(os.Stderr, "model %s: %s, %d layers, hidden %d, %d/%d heads of %d, vocab %d, %.1f M parameters, %s (%.1f MB), loaded in %v\n",
		*dir, c.Family, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.VocabSize, float64(c.Params())/1e6, m.DType,
		float64(m.WeightBytes())/1e6, loadTime.Round(time.Millisecond))
	ctx := len(ids) + *maxTokens
	if ctx > c.MaxPositionEmbeddings {
		return fmt.Errorf("%d prompt tokens + %d new tokens exceed the model's %d positions", len(ids), *maxTokens, c.MaxPositionEmbeddings)
	}
	e, err := model.NewEngine(m, (ctx+*blockSize-1) / *blockSize, *blockSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "device: %s; KV cache %d blocks of %d tokens (%.1f MB)\n",
		where, e.Cache.Config().NumBlocks, *blockSize, float64(e.Cache.Config().Bytes())/1e6)
	fmt.Fprintf(os.Stderr, "sampling: %s; EOS ids %v; stop strings %q; at most %d tokens\n",
		describeSampling(sampling, *window), c.EOSTokenIDs, []string(stops), *maxTokens)
	if !*asJSON {
		if tok != nil {
			fmt.Fprintf(os.Stderr, "prompt (%d tokens): %q\ncontinuation:\n", len(ids), promptText)
		} else {
			fmt.Fprintf(os.Stderr, "prompt ids (%d): %s\ncontinuation ids:\n", len(ids), joinIDs(ids))
		}
	}

	var steps []*model.StepResult
	var text strings.Builder
	res := generateResult{PromptIDs: ids, Stop: "max_tokens"}
	start := time.Now()
	var ttft time.Duration
	opts := model.GenerateOptions{MaxTokens: *maxTokens, Sampling: sampling, PenaltyWindow: *window, StopAtEOS: true, Stop: stops,
		OnToken: func(id int32, r *model.StepResult) error {
			if len(steps) == 0 {
				ttft = time.Since(start)
			}
			steps = append(steps, r)
			if c.IsEOS(int(id)) {
				res.Stop = "eos"
			} else if tok == nil && !*asJSON {
				fmt.Printf("%d ", id)
			}
			if *stepStats {
				fmt.Fprintf(os.Stderr, "\n[step %d: %v; %v]\n", len(steps), r.Time.Round(time.Microsecond), r.Stats)
			}
			return nil
		}}
	if tok != nil {
		opts.Tokenizer = tok
		opts.OnText = func(s string) error {
			text.WriteString(s)
			if !*asJSON {
				fmt.Print(s)
			}
			return nil
		}
	}
	res.GeneratedIDs, err = e.Generate(0, ids, opts)
	total := time.Since(start)
	if err != nil {
		return err
	}
	if res.Stop == "max_tokens" && slices.ContainsFunc(stops, func(s string) bool { return strings.Contains(tok.Decode(res.GeneratedIDs), s) }) {
		res.Stop = "stop"
	}
	res.Text = text.String()
	if !*asJSON {
		fmt.Println()
	}
	tpot := printGenerateSummary(steps, ttft, total)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	res.LoadMS, res.TTFTMS, res.TPOTMS, res.TotalMS = ms(loadTime), ms(ttft), ms(tpot), ms(total)
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	}
	if *check {
		hz := hazards()
		fmt.Fprintf(os.Stderr, "checking device: %d hazards\n", len(hz))
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

// joinIDs returns ids as space-separated numbers.
func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, " ")
}

// promptTokens returns the prompt's token ids and the tokenizer that made
// them: the -prompt-ids list (no tokenizer), or the prompt text encoded
// with the model's tokenizer, after the model's BOS if addBOS.
func promptTokens(dir string, c model.Config, text, idList string, addBOS bool) ([]int32, tokenizer.Tokenizer, error) {
	if idList != "" {
		var ids []int32
		for _, f := range strings.Split(idList, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil || id < 0 || int(id) >= c.VocabSize {
				return nil, nil, fmt.Errorf("-prompt-ids: %q is not a token id in [0, %d)", f, c.VocabSize)
			}
			ids = append(ids, int32(id))
		}
		return ids, nil, nil
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (use -prompt-ids)", err)
	}
	ids, err := tok.Encode(text)
	if err != nil {
		return nil, nil, fmt.Errorf("-prompt: %w", err)
	}
	if addBOS && c.BOSTokenID >= 0 {
		ids = append([]int32{int32(c.BOSTokenID)}, ids...)
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("empty prompt")
	}
	return ids, tok, nil
}

// printGenerateSummary prints latency, throughput and the runtime's
// statistics of the prefill step and the mean of the decode steps to
// stderr, and returns the mean decode step time (0 with no decode step). A
// decode step's time runs from one token's delivery to the next: the next
// step's building and submitting, and the wait for this one.
func printGenerateSummary(steps []*model.StepResult, ttft, total time.Duration) time.Duration {
	w := os.Stderr
	fmt.Fprintf(w, "%d tokens in %v: TTFT %v", len(steps), total.Round(time.Millisecond), ttft.Round(time.Microsecond))
	dec := steps[1:]
	if len(dec) == 0 {
		fmt.Fprintln(w)
		return 0
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
	fmt.Fprintf(w, ", TPOT %v, %.1f tokens/s\n", tpot.Round(time.Microsecond), float64(n)/sum.Seconds())
	p := steps[0].Stats
	fmt.Fprintf(w, "prefill step: %d nodes, %d dispatches, %d command buffers, %d host waits\n", p.Nodes, p.Dispatches, p.CommandBuffers, p.HostWaits)
	per := func(v int) float64 { return float64(v) / float64(n) }
	mean := func(d time.Duration) time.Duration { return (d / time.Duration(n)).Round(time.Microsecond) }
	fmt.Fprintf(w, "decode steps (mean of %d): %.0f nodes, %.0f dispatches, %.1f command buffers, %.2f host waits per step; plan %v, encode %v, device wait %v, graph build, token read-back and the rest %v\n",
		n, per(st.Nodes), per(st.Dispatches), per(st.CommandBuffers), per(st.HostWaits),
		mean(st.Plan), mean(st.Encode), mean(st.Wait), mean(sum-st.Plan-st.Encode-st.Wait))
	return tpot
}

// checkDecodeFlags checks the flags generate and chat share before anything
// is loaded, and returns the dtype (graph.Invalid: the weights').
func checkDecodeFlags(dtypeName string, maxTokens, blockSize, window int) (graph.DType, error) {
	dt := graph.Invalid
	if dtypeName != "" {
		var err error
		if dt, err = graph.ParseDType(dtypeName); err != nil {
			return dt, err
		}
	}
	if maxTokens < 1 {
		return dt, fmt.Errorf("-max-tokens %d: want at least 1", maxTokens)
	}
	if err := checkBlockSize(blockSize); err != nil {
		return dt, err
	}
	if window < 1 {
		return dt, fmt.Errorf("-repetition-window %d: want at least 1", window)
	}
	return dt, nil
}
