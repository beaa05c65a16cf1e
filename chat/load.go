package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files a model directory may carry its chat template in.
const (
	TemplateFile = "chat_template.jinja"
	ConfigFile   = "tokenizer_config.json"
)

// ErrNoTemplate is returned by Load for a directory without a chat template.
var ErrNoTemplate = errors.New("no chat template")

// Chat is a model's chat template with the special tokens it refers to.
type Chat struct {
	Template *Template
	BOS, EOS string // tokenizer_config.json's bos_token and eos_token ("" when absent)
	Source   string // the file the template came from
}

// Message is one turn of a conversation.
type Message struct {
	Role, Content string
}

// Load reads dir's chat template: chat_template.jinja if present, else
// tokenizer_config.json's chat_template (a string, or a list of named
// templates of which "default" is used). It returns ErrNoTemplate (wrapped)
// when there is none.
func Load(dir string) (*Chat, error) {
	c := &Chat{}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
		if c.BOS, err = tokenText(cfg.BOS); err != nil {
			return nil, fmt.Errorf("%s: bos_token: %w", cfgPath, err)
		}
		if c.EOS, err = tokenText(cfg.EOS); err != nil {
			return nil, fmt.Errorf("%s: eos_token: %w", cfgPath, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	var src string
	jinjaPath := filepath.Join(dir, TemplateFile)
	if b, err := os.ReadFile(jinjaPath); err == nil {
		src, c.Source = string(b), jinjaPath
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else if len(cfg.ChatTemplate) > 0 && string(cfg.ChatTemplate) != "null" {
		if src, err = configTemplate(cfg.ChatTemplate); err != nil {
			return nil, fmt.Errorf("%s: chat_template: %w", cfgPath, err)
		}
		c.Source = cfgPath
	} else {
		return nil, fmt.Errorf("%s: %w (no %s, and no chat_template in %s)", dir, ErrNoTemplate, TemplateFile, ConfigFile)
	}
	if c.Template, err = Parse(src); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Source, err)
	}
	return c, nil
}

// configTemplate returns the template of a chat_template value.
func configTemplate(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("want a string or a list of {name, template}: %w", err)
	}
	var names []string
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
		names = append(names, n.Name)
	}
	return "", fmt.Errorf("no template named \"default\" among %s", strings.Join(names, ", "))
}

// tokenText returns a special token given as a string, null or an added
// token object {"content": ...}.
func tokenText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var tok struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %s", raw)
	}
	return *tok.Content, nil
}

// Render renders a conversation: messages, add_generation_prompt, bos_token
// and eos_token, and extra variables (enable_thinking, tools, ...), which
// win over those.
func (c *Chat) Render(messages []Message, addGenerationPrompt bool, extra map[string]any) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	vars := map[string]any{
		"messages":              msgs,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             c.BOS,
		"eos_token":             c.EOS,
	}
	for k, v := range extra {
		vars[k] = v
	}
	return c.Template.Render(vars)
}

// strftime formats t with C strftime directives, those templates use.
func strftime(format string, t time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		i++
		if i == len(format) {
			return "", fmt.Errorf("strftime_now: format %q ends with %%", format)
		}
		layout := map[byte]string{'d': "02", 'm': "01", 'Y': "2006", 'y': "06", 'b': "Jan", 'B': "January",
			'a': "Mon", 'A': "Monday", 'H': "15", 'M': "04", 'S': "05", 'p': "PM"}[format[i]]
		switch {
		case format[i] == '%':
			b.WriteByte('%')
		case format[i] == 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case format[i] == 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case layout != "":
			b.WriteString(t.Format(layout))
		default:
			return "", fmt.Errorf("strftime_now: unsupported directive %%%c", format[i])
		}
	}
	return b.String(), nil
}
