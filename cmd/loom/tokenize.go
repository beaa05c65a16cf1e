package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/loomrt/loom/tokenizer"
)

func init() {
	commands["tokenize"] = command{"print the token ids of text: loom tokenize [-model DIR] [-chat] [-json] TEXT (needs only the tokenizer files)", runTokenize}
}

func runTokenize(args []string) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	dir := modelFlag(fs, "model directory with "+tokenizer.BytesFile+" or "+tokenizer.HFFile)
	asJSON := fs.Bool("json", false, "print the ids as one JSON array")
	asChat := fs.Bool("chat", false, chatHelp)
	if err := parseFlags(fs, args, "TEXT"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("want one TEXT argument, got %d (quote the text)", fs.NArg())
	}
	dirName, err := findModel(*dir)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(dirName)
	if err != nil {
		return err
	}
	text := fs.Arg(0)
	if *asChat {
		if text, err = chatPrompt(dirName, text); err != nil {
			return err
		}
	}
	ids, err := tok.Encode(text)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	fmt.Println(strings.Join(s, " "))
	return nil
}
