package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

func init() {
	commands["info"] = command{"print the device's caps and a model directory's configuration, and check its weights against it", runInfo}
}

func runInfo(args []string) error {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	dir := modelFlag(fs, "Qwen3 or Llama model directory")
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	_, dev, err := newCPURuntime(false, runtime.Options{})
	if err != nil {
		return err
	}
	caps := dev.Caps()
	fmt.Printf("device %s: %d workers (cores), SIMD width %d, %d threads per group, %d KiB shared memory per group\n",
		caps.Device, caps.Cores, caps.SIMDWidth, caps.MaxThreadsPerGroup, caps.MaxSharedBytes>>10)
	if *dir, err = findModel(*dir); err != nil {
		return err
	}
	c, err := model.LoadConfig(*dir)
	if err != nil {
		return err
	}
	fmt.Printf("\nmodel %s (%s):\n", *dir, c.Family)
	rows := [][2]string{
		{"vocab_size", fmt.Sprint(c.VocabSize)},
		{"hidden_size", fmt.Sprint(c.HiddenSize)},
		{"intermediate_size", fmt.Sprint(c.IntermediateSize)},
		{"num_hidden_layers", fmt.Sprint(c.NumLayers)},
		{"num_attention_heads", fmt.Sprint(c.NumHeads)},
		{"num_key_value_heads", fmt.Sprint(c.NumKVHeads)},
		{"head_dim", fmt.Sprint(c.HeadDim)},
		{"max_position_embeddings", fmt.Sprint(c.MaxPositionEmbeddings)},
		{"rms_norm_eps", fmt.Sprint(c.RMSNormEps)},
		{"rope_theta", fmt.Sprint(c.RopeTheta)},
		{"tie_word_embeddings", fmt.Sprint(c.TieWordEmbeddings)},
		{"attention_bias", fmt.Sprint(c.AttentionBias)},
		{"bos_token_id", fmt.Sprint(c.BOSTokenID)},
		{"eos_token_id", fmt.Sprint(c.EOSTokenIDs)},
		{"dtype", c.TorchDType},
		{"quantization", quantSummary(c.Quantization)},
		{"parameters", fmt.Sprintf("%d (%.1f M)", c.Params(), float64(c.Params())/1e6)},
	}
	if s := c.RopeScaling; s != nil {
		rows = append(rows, [2]string{"rope_scaling", fmt.Sprintf("llama3: factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %g",
			s.Factor, s.LowFreqFactor, s.HighFreqFactor, s.OriginalMaxPositionEmbeddings)})
	}
	for _, r := range rows {
		fmt.Printf("  %-24s %s\n", r[0], r[1])
	}
	switch tok, err := tokenizer.Load(*dir); tok.(type) {
	case *tokenizer.Bytes:
		fmt.Printf("  %-24s Loom's byte tokenizer (%s)\n", "tokenizer", tokenizer.BytesFile)
	case *tokenizer.BPE:
		fmt.Printf("  %-24s Hugging Face BPE (%s)\n", "tokenizer", tokenizer.HFFile)
	default:
		fmt.Printf("  %-24s none Loom implements (%v): prompts are token ids (-prompt-ids)\n", "tokenizer", err)
	}
	paths, err := model.CheckpointFiles(*dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		f, err := model.OpenSafetensors(p)
		if err != nil {
			continue // CheckWeights reports it
		}
		counts := map[string]int{}
		var bytes int64
		for _, n := range f.Names() {
			t, _ := f.Info(n)
			counts[t.DType]++
			bytes += t.End - t.Begin
		}
		var parts []string
		for _, dt := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%d %s", counts[dt], dt))
		}
		fmt.Printf("  %-24s %d tensors (%s), %.1f MB\n", filepath.Base(p), len(f.Names()), strings.Join(parts, ", "), float64(bytes)/1e6)
		f.Close()
	}
	problems := model.CheckWeights(*dir, c)
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "problem: %v\n", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %d problems with the weights (listed above)", *dir, len(problems))
	}
	fmt.Printf("  %-24s every tensor present, of the config's shapes, in dtypes Loom loads\n", "weights")
	return nil
}

// quantSummary describes a checkpoint's quantization for loom info.
func quantSummary(q *model.Quantization) string {
	if q == nil {
		return "none"
	}
	return fmt.Sprintf("%d bits, groups of %d (MLX affine), %d per-module overrides", q.Bits, q.GroupSize, len(q.Modules))
}
