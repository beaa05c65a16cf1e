package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/loomrt/loom/chat"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

// chatHelp describes the -chat flag of tokenize and generate.
const chatHelp = "TEXT is one user message, rendered with the model's chat template (" + chat.TemplateFile + " or " + chat.ConfigFile + "'s chat_template) and the generation prompt"

// chatPrompt renders text as one user message with dir's chat template,
// followed by the generation prompt (the assistant turn's opening).
func chatPrompt(dir, text string) (string, error) {
	c, err := chat.Load(dir)
	if err != nil {
		return "", fmt.Errorf("-chat: %w", err)
	}
	s, err := c.Render([]chat.Message{{Role: "user", Content: text}}, true, nil)
	if err != nil {
		return "", fmt.Errorf("-chat: %w", err)
	}
	return s, nil
}

func init() {
	commands["chat"] = command{"chat with a model that has a chat template: streaming, multi-turn, from stdin", runChat}
}

// runChat reads user lines from stdin until EOF or /exit. Each turn renders
// the whole conversation with the chat template and the generation prompt,
// prefills all of it (the KV cache is not kept across turns), streams the
// reply to stdout and appends it to the conversation.
func runChat(args []string) (err error) {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	dir := modelFlag(fs, "model directory with a chat template ("+chat.TemplateFile+" or "+chat.ConfigFile+"'s chat_template) and a tokenizer")
	system := fs.String("system", "", "system message that opens the conversation")
	maxTokens := fs.Int("max-tokens", 200, "most tokens of one reply")
	context := fs.Int("context", 0, "most tokens of a conversation, replies included; sizes the KV cache (default: the smaller of 4096 and the model's max_position_embeddings)")
	sf := newSamplingFlags(fs)
	var stops stopFlags
	fs.Var(&stops, "stop", "end a reply when its text contains this string, which is not printed (repeatable)")
	window := fs.Int("repetition-window", model.DefaultPenaltyWindow, "how many of the latest tokens the penalties (repetition, presence, frequency) see")
	dtypeName := fs.String("dtype", "", "compute dtype: float32, bfloat16 or float16 (default: the weights')")
	device := fs.String("device", "cpu", "device: cpu, cuda or metal")
	blockSize := fs.Int("block-size", 16, blockSizeHelp)
	if err := parseFlags(fs, args, ""); err != nil {
		return err
	}
	if *dir, err = findModel(*dir); err != nil {
		return err
	}
	dt, err := checkDecodeFlags(*dtypeName, *maxTokens, *blockSize, *window)
	if err != nil {
		return err
	}
	// The config, template and tokenizer are checked before the weights are read.
	c, err := model.LoadConfig(*dir)
	if err != nil {
		return err
	}
	if !flagSet(fs, "context") {
		*context = min(4096, c.MaxPositionEmbeddings)
	}
	if *context < 2 || *context > c.MaxPositionEmbeddings {
		return fmt.Errorf("-context %d: want 2 to the model's %d positions", *context, c.MaxPositionEmbeddings)
	}
	sampling := sf.sampling(fs, c.Generation)
	if err := sampling.Validate(); err != nil {
		return err
	}
	tmpl, err := chat.Load(*dir)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	var msgs []chat.Message
	if *system != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: *system})
	}
	if _, err := tmpl.Render(append(msgs, chat.Message{Role: "user", Content: "hi"}), true, nil); err != nil {
		return err
	}

	rt, where, _, err := openRuntime(*device, false, runtime.Options{})
	if err != nil {
		return err
	}
	m, err := model.Load(rt, *dir, dt)
	if err != nil {
		return err
	}
	e, err := model.NewEngine(m, (*context+*blockSize-1) / *blockSize, *blockSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "model %s on %s; sampling: %s; at most %d tokens a reply, %d a conversation. Type a message; /exit or end of input quits.\n",
		*dir, where, describeSampling(sampling, *window), *maxTokens, *context)

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	for turn := 0; ; turn++ {
		fmt.Fprint(os.Stderr, "> ")
		if !in.Scan() {
			fmt.Fprintln(os.Stderr)
			return in.Err()
		}
		line := strings.TrimSuffix(in.Text(), "\r")
		if line == "/exit" {
			return nil
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: line})
		prompt, err := tmpl.Render(msgs, true, nil)
		if err != nil {
			return err
		}
		ids, err := tok.Encode(prompt) // the template, not Loom, adds any BOS
		if err != nil {
			return err
		}
		if len(ids)+*maxTokens > *context {
			return fmt.Errorf("the conversation's %d tokens and a reply of up to %d exceed -context %d", len(ids), *maxTokens, *context)
		}
		s := sampling
		s.Seed += uint64(turn) // each turn draws afresh; -seed N gives turn k seed N+k
		var reply strings.Builder
		start := time.Now()
		out, err := e.Generate(0, ids, model.GenerateOptions{MaxTokens: *maxTokens, Sampling: s, PenaltyWindow: *window, StopAtEOS: true, Stop: stops,
			Tokenizer: tok, OnText: func(s string) error {
				reply.WriteString(s)
				fmt.Print(s)
				return nil
			}})
		fmt.Println()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "[%d prompt tokens, %d generated in %v]\n", len(ids), len(out), time.Since(start).Round(time.Millisecond))
		msgs = append(msgs, chat.Message{Role: "assistant", Content: reply.String()})
	}
}
