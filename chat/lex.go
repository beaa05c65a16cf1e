// Package chat renders Hugging Face chat templates (tokenizer_config.json's
// chat_template, or chat_template.jinja): the subset of Jinja that released
// templates use (Qwen2/Qwen3, Llama 3, Mistral, SmolLM2), with the whitespace
// options transformers renders them with (trim_blocks, lstrip_blocks, the
// template's one trailing newline dropped). A construct outside the subset is
// an error that says "unsupported" and names the template line.
package chat

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexed token.
type tokKind int

const (
	tText   tokKind = iota // literal template text
	tOpen                  // {{ (output) or {% (statement); val says which
	tClose                 // }} or %}
	tName                  // identifier or keyword
	tString                // string literal (val is unescaped)
	tInt
	tFloat
	tOp // operator or punctuation
	tEOF
)

type token struct {
	kind tokKind
	val  string
	line int
}

// lex splits src into tokens, applying the whitespace rules: "-" on a tag
// strips all whitespace on that side, a block or comment tag's following
// newline is dropped (trim_blocks), and spaces and tabs before a block or
// comment tag at the start of a line are dropped (lstrip_blocks).
func lex(src string) ([]token, error) {
	src = strings.TrimSuffix(src, "\n")
	var toks []token
	line := 1
	i := 0
	lineStart := true // the raw source is at a line start at i (lstrip_blocks)
	for i < len(src) {
		j := nextTag(src, i)
		text := src[i:j]
		if j < len(src) {
			kind := src[j+1]
			if len(src) > j+2 && src[j+2] == '-' {
				text = strings.TrimRightFunc(text, unicode.IsSpace)
			} else if kind == '%' || kind == '#' {
				// lstrip_blocks: only blanks between the line start and the tag.
				k := strings.LastIndexAny(text, "\n")
				rest := text[k+1:]
				if strings.Trim(rest, " \t") == "" && (k >= 0 || lineStart) {
					text = text[:k+1]
				}
			}
		}
		if text != "" {
			toks = append(toks, token{tText, text, line})
		}
		line += strings.Count(src[i:j], "\n")
		if j == len(src) {
			break
		}
		kind := src[j+1]
		start := line
		p := j + 2
		if p < len(src) && src[p] == '-' {
			p++
		}
		if kind == '#' {
			end := strings.Index(src[p:], "#}")
			if end < 0 {
				return nil, fmt.Errorf("line %d: comment is not closed", start)
			}
			end += p
			line += strings.Count(src[j:end], "\n")
			i = end + 2
			lineStart = false
			if src[end-1] == '-' {
				i = skipSpace(src, i, &line)
			} else if i < len(src) && src[i] == '\n' {
				i++
				line++
				lineStart = true
			}
			continue
		}
		closer := "}}"
		if kind == '%' {
			closer = "%}"
		}
		toks = append(toks, token{tOpen, string([]byte{'{', kind}), start})
		var err error
		toks, p, err = lexExpr(src, p, closer, toks, &line)
		if err != nil {
			return nil, err
		}
		trim := src[p-1] == '-'
		toks = append(toks, token{tClose, closer, line})
		i = p + 2
		lineStart = false
		if trim {
			i = skipSpace(src, i, &line)
		} else if kind == '%' && i < len(src) && src[i] == '\n' {
			i++
			line++
			lineStart = true
		}
	}
	toks = append(toks, token{tEOF, "", line})
	return toks, nil
}

func nextTag(src string, i int) int {
	for {
		k := strings.IndexByte(src[i:], '{')
		if k < 0 || i+k+1 >= len(src) {
			return len(src)
		}
		c := src[i+k+1]
		if c == '{' || c == '%' || c == '#' {
			return i + k
		}
		i += k + 1
	}
}

func skipSpace(src string, i int, line *int) int {
	for i < len(src) {
		r, n := utf8.DecodeRuneInString(src[i:])
		if !unicode.IsSpace(r) {
			break
		}
		if r == '\n' {
			*line++
		}
		i += n
	}
	return i
}

var ops3 = []string{"//", "**", "==", "!=", "<=", ">="}

// lexExpr lexes the inside of a tag from p up to closer (optionally preceded
// by "-"), returning the index of the closer.
func lexExpr(src string, p int, closer string, toks []token, line *int) ([]token, int, error) {
	for {
		for p < len(src) && (src[p] == ' ' || src[p] == '\t' || src[p] == '\n' || src[p] == '\r') {
			if src[p] == '\n' {
				*line++
			}
			p++
		}
		if p >= len(src) {
			return nil, 0, fmt.Errorf("line %d: tag is not closed with %q", *line, closer)
		}
		if strings.HasPrefix(src[p:], closer) {
			return toks, p, nil
		}
		if src[p] == '-' && strings.HasPrefix(src[p+1:], closer) {
			return toks, p + 1, nil
		}
		c := src[p]
		switch {
		case c == '"' || c == '\'':
			var b strings.Builder
			q := p + 1
			for ; q < len(src) && src[q] != c; q++ {
				if src[q] == '\\' && q+1 < len(src) {
					q++
					switch src[q] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'b':
						b.WriteByte('\b')
					case 'f':
						b.WriteByte('\f')
					case 'v':
						b.WriteByte('\v')
					case '\\', '\'', '"':
						b.WriteByte(src[q])
					default:
						b.WriteByte('\\')
						b.WriteByte(src[q])
					}
					continue
				}
				if src[q] == '\n' {
					*line++
				}
				b.WriteByte(src[q])
			}
			if q >= len(src) {
				return nil, 0, fmt.Errorf("line %d: string is not closed", *line)
			}
			toks = append(toks, token{tString, b.String(), *line})
			p = q + 1
		case c >= '0' && c <= '9':
			q := p
			kind := tInt
			for q < len(src) && (src[q] >= '0' && src[q] <= '9' || src[q] == '.' && kind == tInt && q+1 < len(src) && src[q+1] >= '0' && src[q+1] <= '9') {
				if src[q] == '.' {
					kind = tFloat
				}
				q++
			}
			toks = append(toks, token{kind, src[p:q], *line})
			p = q
		case isLetter(c):
			q := p
			for q < len(src) && (isLetter(src[q]) || src[q] >= '0' && src[q] <= '9') {
				q++
			}
			toks = append(toks, token{tName, src[p:q], *line})
			p = q
		default:
			op := string(c)
			for _, o := range ops3 {
				if strings.HasPrefix(src[p:], o) {
					op = o
				}
			}
			if !strings.Contains("+-*/%~|.,:()[]{}=<>!", op[:1]) || op == "!" {
				r, _ := utf8.DecodeRuneInString(src[p:])
				return nil, 0, fmt.Errorf("line %d: unsupported character %q in a tag", *line, r)
			}
			toks = append(toks, token{tOp, op, *line})
			p += len(op)
		}
	}
}

// isLetter reports whether c may begin a name: templates' names are ASCII.
func isLetter(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
