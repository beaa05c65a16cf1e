package main

import (
	"fmt"

	"github.com/loomrt/loom/chat"
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
