package model_test

import (
	"fmt"
	"log"

	"github.com/loomrt/loom/cpu"
	"github.com/loomrt/loom/graph"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/runtime"
	"github.com/loomrt/loom/tokenizer"
)

// Load the shipped tiny model and continue a prompt greedily: one prefill
// step, then one decode step (one Eval of all layers) per token.
func ExampleEngine_Generate() {
	rt, err := runtime.New(cpu.New(cpu.Options{}), runtime.Options{})
	if err != nil {
		log.Fatal(err)
	}
	const dir = "../testdata/tiny-qwen3"
	m, err := model.Load(rt, dir, graph.Invalid) // float32, as stored
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	e, err := model.NewEngine(m, 8, 16) // 8 blocks of 16 tokens
	if err != nil {
		log.Fatal(err)
	}
	text, err := tok.Encode("// Copyright 2009 The Go Authors. All rights reserved.\n")
	if err != nil {
		log.Fatal(err)
	}
	prompt := append([]int32{int32(m.Config.BOSTokenID)}, text...)
	out, err := e.Generate(1, prompt, model.GenerateOptions{MaxTokens: 24}) // greedy
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", tok.Decode(out))
	// Output: "// Use of governed by the LICENSE file.\n\n// license that be found that be found.\n// license that be found that"
}
