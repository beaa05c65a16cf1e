package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/loomrt/loom/chat"
	"github.com/loomrt/loom/model"
	"github.com/loomrt/loom/ops"
	"github.com/loomrt/loom/tokenizer"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 4 << 20

// DefaultMaxTokens is a completion's max_tokens when the request has
// none (OpenAI's default for /v1/completions).
const DefaultMaxTokens = 16

// Server answers the OpenAI-style API with a Scheduler.
type Server struct {
	Sched *Scheduler
	Tok   tokenizer.Tokenizer
	// Chat is the model's chat template; nil answers chat completions
	// with a 400.
	Chat *chat.Chat
	// Model is the name served (/v1/models and the requests' "model").
	Model string
	// Sampling holds the defaults of the settings a request leaves out
	// (the seed aside: a request without one gets a random one); its
	// RepetitionPenalty is repetition_penalty's.
	Sampling ops.Sampling

	ids atomic.Int64
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, false) })
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, true) })
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.Sched.Metrics.Write(w)
	})
	return mux
}

// apiError is an OpenAI-style error.
type apiError struct {
	status  int
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(param, code, format string, a ...any) *apiError {
	e := &apiError{status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...), Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	return e
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": s.Model, "object": "model", "created": 0, "owned_by": "loom"}}})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.Sched.ShuttingDown() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// request is the body of both completion endpoints.
type request struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []chat.Message  `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	MinP                *float64        `json:"min_p"`
	Seed                *uint64         `json:"seed"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	RepetitionPenalty   *float64        `json:"repetition_penalty"` // vLLM's extension
	Logprobs            json.RawMessage `json:"logprobs"`           // chat: a bool; completions: an int
	TopLogprobs         *int            `json:"top_logprobs"`       // chat only
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	IgnoreEOS           bool            `json:"ignore_eos"` // vLLM's extension: generate max_tokens whatever the model draws
	N                   *int            `json:"n"`
}

// parse reads and checks a request and returns its prompt tokens.
func (s *Server) parse(r *http.Request, isChat bool) (*request, []int32, Request, []string, *apiError) {
	var q request
	var job Request
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		e := badRequest("", "", "reading the body: %v", err)
		if errors.As(err, new(*http.MaxBytesError)) {
			e.status = http.StatusRequestEntityTooLarge
		}
		return nil, nil, job, nil, e
	}
	if !utf8.Valid(body) {
		return nil, nil, job, nil, badRequest("", "invalid_utf8", "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&q); err != nil {
		return nil, nil, job, nil, badRequest("", "invalid_json", "the body is not a valid request: %v", err)
	}
	if dec.More() {
		return nil, nil, job, nil, badRequest("", "invalid_json", "the body has data after the JSON object")
	}
	if q.Model != "" && q.Model != s.Model {
		e := badRequest("model", "model_not_found", "the model %q does not exist; this server serves %q", q.Model, s.Model)
		e.status = http.StatusNotFound
		return nil, nil, job, nil, e
	}
	if q.N != nil && *q.N != 1 {
		return nil, nil, job, nil, badRequest("n", "", "unsupported: n = %d (only 1)", *q.N)
	}
	var text string
	if isChat {
		if s.Chat == nil {
			return nil, nil, job, nil, badRequest("messages", "", "model has no chat template")
		}
		if len(q.Messages) == 0 {
			return nil, nil, job, nil, badRequest("messages", "", "messages is empty")
		}
		if text, err = s.Chat.Render(q.Messages, true, nil); err != nil {
			return nil, nil, job, nil, badRequest("messages", "", "rendering the chat template: %v", err)
		}
	} else if err := json.Unmarshal(q.Prompt, &text); err != nil || q.Prompt == nil {
		return nil, nil, job, nil, badRequest("prompt", "", "prompt must be a string (lists are unsupported)")
	}
	prompt, err := s.Tok.Encode(text)
	if err != nil {
		return nil, nil, job, nil, badRequest("prompt", "", "encoding the prompt: %v", err)
	}
	if len(prompt) == 0 {
		return nil, nil, job, nil, badRequest("prompt", "", "the prompt is empty")
	}
	capacity := s.Sched.Capacity()
	if len(prompt) >= capacity {
		return nil, nil, job, nil, badRequest("prompt", "context_length_exceeded", "the prompt's %d tokens leave no room in the context of %d tokens", len(prompt), capacity)
	}
	maxTokens, param := DefaultMaxTokens, "max_tokens"
	if isChat {
		maxTokens = capacity - len(prompt)
	}
	switch {
	case q.MaxCompletionTokens != nil:
		maxTokens, param = *q.MaxCompletionTokens, "max_completion_tokens"
	case q.MaxTokens != nil:
		maxTokens = *q.MaxTokens
	}
	if maxTokens < 1 {
		return nil, nil, job, nil, badRequest(param, "", "%s %d must be at least 1", param, maxTokens)
	}
	if maxTokens > capacity-len(prompt) { // not the sum, which may overflow
		return nil, nil, job, nil, badRequest(param, "context_length_exceeded", "the prompt's %d tokens and %s %d exceed the context of %d tokens", len(prompt), param, maxTokens, capacity)
	}
	sm := s.Sampling
	pen := model.Penalties{Repetition: sm.RepetitionPenalty}
	sm.RepetitionPenalty = 0
	sm.Seed = rand.Uint64()
	if q.Temperature != nil {
		sm.Temperature = float32(*q.Temperature)
	}
	if q.TopP != nil {
		sm.TopP = float32(*q.TopP)
	}
	if q.TopK != nil {
		sm.TopK = *q.TopK
	}
	if q.MinP != nil {
		sm.MinP = float32(*q.MinP)
	}
	if q.Seed != nil {
		sm.Seed = *q.Seed
	}
	if err := sm.Validate(); err != nil {
		return nil, nil, job, nil, badRequest("", "", "sampling: %v", err)
	}
	for _, p := range []struct {
		name string
		v    *float64
		to   *float32
	}{{"presence_penalty", q.PresencePenalty, &pen.Presence}, {"frequency_penalty", q.FrequencyPenalty, &pen.Frequency}} {
		if p.v != nil {
			if !(*p.v >= -2 && *p.v <= 2) {
				return nil, nil, job, nil, badRequest(p.name, "", "%s %v must lie in [-2, 2]", p.name, *p.v)
			}
			*p.to = float32(*p.v)
		}
	}
	if q.RepetitionPenalty != nil {
		if v := *q.RepetitionPenalty; !(v > 0) || math.IsInf(v, 0) {
			return nil, nil, job, nil, badRequest("repetition_penalty", "", "repetition_penalty %v must be a finite number > 0", v)
		}
		pen.Repetition = float32(*q.RepetitionPenalty)
	}
	logprobs, top, apiErr := parseLogprobs(q, isChat)
	if apiErr != nil {
		return nil, nil, job, nil, apiErr
	}
	stops, apiErr := parseStop(q.Stop)
	if apiErr != nil {
		return nil, nil, job, nil, apiErr
	}
	job = Request{Prompt: prompt, MaxTokens: maxTokens, Sampling: sm, Penalties: pen, StopAtEOS: !q.IgnoreEOS, Logprobs: logprobs, TopLogprobs: top}
	return &q, prompt, job, stops, nil
}

// parseLogprobs reads the log-prob fields: chat's logprobs (a bool) and
// top_logprobs, or a completion's logprobs (the number of top log-probs).
func parseLogprobs(q request, isChat bool) (logprobs bool, top int, _ *apiError) {
	null := len(q.Logprobs) == 0 || string(q.Logprobs) == "null"
	if !isChat {
		if q.TopLogprobs != nil {
			return false, 0, badRequest("top_logprobs", "", "top_logprobs is for chat completions; a completion's logprobs is the number of top log-probs")
		}
		if null {
			return false, 0, nil
		}
		if err := json.Unmarshal(q.Logprobs, &top); err != nil || top < 0 || top > MaxTopLogprobs {
			return false, 0, badRequest("logprobs", "", "logprobs must be an integer from 0 to %d", MaxTopLogprobs)
		}
		return true, top, nil
	}
	if !null {
		if err := json.Unmarshal(q.Logprobs, &logprobs); err != nil {
			return false, 0, badRequest("logprobs", "", "logprobs must be a boolean")
		}
	}
	if q.TopLogprobs != nil {
		top = *q.TopLogprobs
		switch {
		case top < 0 || top > MaxTopLogprobs:
			return false, 0, badRequest("top_logprobs", "", "top_logprobs %d must lie in [0, %d]", top, MaxTopLogprobs)
		case !logprobs:
			return false, 0, badRequest("top_logprobs", "", "top_logprobs needs logprobs to be true")
		}
	}
	return logprobs, top, nil
}

// tokenLogprobs are the log-probs of some of a completion's tokens, as
// the API shows them.
type tokenLogprobs struct {
	tok     tokenizer.Tokenizer
	isChat  bool
	offset  int // completions' text_offset of the next token: the bytes before it
	entries []Event
}

// json returns the log-probs of the entries held and forgets them.
func (l *tokenLogprobs) json() any {
	bytesOf := func(id int32) ([]byte, string) {
		b := tokenizer.TokenBytes(l.tok, id)
		return b, strings.ToValidUTF8(string(b), "\uFFFD")
	}
	// ints makes "bytes" a list of numbers, as OpenAI's, not base64.
	ints := func(b []byte) []int {
		out := make([]int, len(b))
		for i, c := range b {
			out[i] = int(c)
		}
		return out
	}
	defer func() { l.entries = l.entries[:0] }()
	if l.isChat {
		content := []any{}
		for _, ev := range l.entries {
			b, text := bytesOf(ev.Token)
			top := []any{}
			for _, t := range ev.Top {
				tb, tt := bytesOf(t.Token)
				top = append(top, map[string]any{"token": tt, "logprob": t.Logprob, "bytes": ints(tb)})
			}
			content = append(content, map[string]any{"token": text, "logprob": ev.Logprob, "bytes": ints(b), "top_logprobs": top})
		}
		return map[string]any{"content": content}
	}
	tokens, lps, tops, offsets := []string{}, []float32{}, []any{}, []int{}
	for _, ev := range l.entries {
		b, text := bytesOf(ev.Token)
		tokens, lps, offsets = append(tokens, text), append(lps, ev.Logprob), append(offsets, l.offset)
		l.offset += len(b)
		top := map[string]float32{}
		for _, t := range ev.Top {
			_, tt := bytesOf(t.Token)
			top[tt] = t.Logprob
		}
		top[text] = ev.Logprob // OpenAI's: the drawn token is always among them
		tops = append(tops, top)
	}
	return map[string]any{"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}
}

// parseStop reads stop: absent, null, a string or a list of strings.
func parseStop(raw json.RawMessage) ([]string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	var list []string
	if err := json.Unmarshal(raw, &one); err == nil {
		list = []string{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest("stop", "", "stop must be a string or a list of strings")
	}
	if slices.Contains(list, "") {
		return nil, badRequest("stop", "", "stop has an empty string")
	}
	return list, nil
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// complete answers a completion or chat completion.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, isChat bool) {
	q, prompt, job, stops, apiErr := s.parse(r, isChat)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	events, err := s.Sched.Submit(ctx, job)
	switch {
	case errors.Is(err, ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, &apiError{status: http.StatusTooManyRequests, Message: err.Error(), Type: "rate_limit_error"})
		return
	case errors.Is(err, ErrShuttingDown):
		w.Header().Set("Retry-After", "5")
		writeError(w, &apiError{status: http.StatusServiceUnavailable, Message: err.Error(), Type: "server_error"})
		return
	case err != nil:
		writeError(w, badRequest("", "", "%v", err))
		return
	}

	id, created := s.ids.Add(1), time.Now().Unix()
	object, prefix := "text_completion", "cmpl-"
	if isChat {
		object, prefix = "chat.completion", "chatcmpl-"
	}
	lps := &tokenLogprobs{tok: s.Tok, isChat: isChat}
	// choice is one choice's JSON: the text (a delta when streaming), and
	// the log-probs of the tokens since the last choice if asked.
	choice := func(text string, reason any, first bool) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": reason, "logprobs": nil}
		if job.Logprobs {
			c["logprobs"] = lps.json()
		}
		switch {
		case !isChat:
			c["text"] = text
		case q.Stream:
			d := map[string]any{"content": text}
			if first {
				d["role"] = "assistant"
			}
			c["delta"] = d
		default:
			c["message"] = map[string]any{"role": "assistant", "content": text}
		}
		return c
	}
	body := func(c map[string]any) map[string]any {
		obj := object
		if isChat && q.Stream {
			obj = "chat.completion.chunk"
		}
		return map[string]any{"id": fmt.Sprintf("%s%d", prefix, id), "object": obj, "created": created, "model": s.Model, "choices": []any{c}}
	}
	flusher, _ := w.(http.Flusher)
	first := true
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if q.Stream {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
	}
	var all strings.Builder
	emit := func(text string) {
		if text == "" {
			return
		}
		if q.Stream {
			send(body(choice(text, nil, first)))
			first = false
		} else {
			all.WriteString(text)
		}
	}

	dec, filter := tokenizer.NewStreamDecoder(s.Tok), tokenizer.NewStopFilter(stops)
	n, reason := 0, ""
	var genErr error
	for ev := range events {
		if ev.Done {
			if ev.Err != nil && reason == "" {
				genErr = ev.Err
			} else if reason == "" {
				reason = ev.Reason
			}
			continue // the channel closes next
		}
		if reason != "" {
			continue // drawn after the stop string, before the cancel took
		}
		n++
		if job.Logprobs {
			lps.entries = append(lps.entries, ev)
		}
		if job.StopAtEOS && s.Sched.e.Model.Config.IsEOS(int(ev.Token)) {
			continue // the EOS is counted, not decoded
		}
		text, stopped := filter.Add(dec.Add(ev.Token))
		emit(text)
		if stopped {
			reason = "stop"
			cancel() // ends the request; its Done event follows within a step
		}
	}
	if genErr != nil {
		if r.Context().Err() != nil {
			return // the client is gone
		}
		e := &apiError{status: http.StatusInternalServerError, Message: genErr.Error(), Type: "server_error"}
		if q.Stream {
			send(map[string]any{"error": e})
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		writeError(w, e)
		return
	}
	// What the decoder and filter hold back comes at the end (a filter
	// that has stopped passes nothing more).
	text, stopped := filter.Add(dec.Flush())
	if stopped {
		reason = "stop"
	} else {
		text += filter.Flush()
	}
	emit(text)
	u := usage{len(prompt), n, len(prompt) + n}
	if q.Stream {
		final := body(choice("", reason, first))
		final["usage"] = u
		send(final)
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	res := body(choice(all.String(), reason, false))
	res["usage"] = u
	writeJSON(w, http.StatusOK, res)
}
