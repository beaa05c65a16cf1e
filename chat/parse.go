package chat

import (
	"fmt"
	"strconv"
)

// Template is a parsed chat template.
type Template struct {
	body []node
}

// Parse parses a chat template's source.
func Parse(src string) (*Template, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	p := &parser{toks: toks}
	body, end, err := p.block()
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	if end != "" {
		return nil, fmt.Errorf("chat template: line %d: unexpected {%% %s %%}", p.toks[p.pos].line, end)
	}
	return &Template{body: body}, nil
}

// Nodes of the template.
type (
	node      interface{}
	textNode  string
	printNode struct{ e expr }
	ifNode    struct {
		conds  []expr
		blocks [][]node // len(conds) or len(conds)+1 with the else block
	}
	forNode struct {
		vars       []string
		iter, cond expr
		body, els  []node
		line       int
	}
	setNode struct {
		name, attr string // attr != "": namespace attribute assignment
		e          expr
		line       int
	}
	loopCtl string // "break" or "continue"
)

// Expressions.
type (
	expr     interface{}
	literal  struct{ v value }
	nameExpr struct {
		name string
		line int
	}
	listExpr []expr
	dictExpr struct{ keys, vals []expr }
	attrExpr struct {
		x    expr
		name string
		line int
	}
	indexExpr struct {
		x, i expr
		line int
	}
	sliceExpr struct {
		x                 expr
		start, stop, step expr // nil when absent
		line              int
	}
	callExpr struct {
		fn     expr
		args   []expr
		kwargs []kwarg
		line   int
	}
	kwarg struct {
		name string
		e    expr
	}
	filterExpr struct {
		x      expr
		name   string
		args   []expr
		kwargs []kwarg
		line   int
	}
	testExpr struct {
		x    expr
		name string
		args []expr
		neg  bool
		line int
	}
	unaryExpr struct {
		op   string
		x    expr
		line int
	}
	binExpr struct {
		op   string
		l, r expr
		line int
	}
	condExpr struct{ cond, a, b expr }
)

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }

func (p *parser) errf(format string, a ...any) error {
	return fmt.Errorf("line %d: "+format, append([]any{p.peek().line}, a...)...)
}

func (p *parser) is(kind tokKind, val string) bool {
	t := p.peek()
	return t.kind == kind && t.val == val
}

func (p *parser) expect(kind tokKind, val string) error {
	if !p.is(kind, val) {
		t := p.peek()
		return p.errf("expected %q, found %q", val, t.val)
	}
	p.pos++
	return nil
}

func (p *parser) name() (string, error) {
	t := p.peek()
	if t.kind != tName {
		return "", p.errf("expected a name, found %q", t.val)
	}
	p.pos++
	return t.val, nil
}

// block parses nodes up to a statement it does not own (endif, else, ...),
// whose keyword it returns with the parser on that keyword; "" at the end.
func (p *parser) block() ([]node, string, error) {
	var out []node
	for {
		t := p.next()
		switch t.kind {
		case tEOF:
			p.pos--
			return out, "", nil
		case tText:
			out = append(out, textNode(t.val))
		case tOpen:
			if t.val == "{{" {
				e, err := p.expr()
				if err != nil {
					return nil, "", err
				}
				if err := p.expect(tClose, "}}"); err != nil {
					return nil, "", err
				}
				out = append(out, printNode{e})
				continue
			}
			kw := p.peek()
			if kw.kind != tName {
				return nil, "", p.errf("expected a statement, found %q", kw.val)
			}
			switch kw.val {
			case "endif", "elif", "else", "endfor":
				return out, kw.val, nil
			}
			p.pos++
			n, err := p.statement(kw)
			if err != nil {
				return nil, "", err
			}
			if n != nil {
				out = append(out, n)
			}
		default:
			return nil, "", p.errf("unexpected %q", t.val)
		}
	}
}

func (p *parser) closeTag() error { return p.expect(tClose, "%}") }

func (p *parser) statement(kw token) (node, error) {
	switch kw.val {
	case "if":
		var n ifNode
		for {
			cond, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.closeTag(); err != nil {
				return nil, err
			}
			body, end, err := p.block()
			if err != nil {
				return nil, err
			}
			n.conds = append(n.conds, cond)
			n.blocks = append(n.blocks, body)
			if end == "" || end == "endfor" {
				return nil, fmt.Errorf("line %d: {%% if %%} from line %d has no {%% endif %%}", p.peek().line, kw.line)
			}
			p.pos++ // the end keyword
			switch end {
			case "elif":
				continue
			case "else":
				if err := p.closeTag(); err != nil {
					return nil, err
				}
				body, end, err := p.block()
				if err != nil {
					return nil, err
				}
				if end != "endif" {
					return nil, fmt.Errorf("line %d: {%% if %%} from line %d has no {%% endif %%}", p.peek().line, kw.line)
				}
				p.pos++
				n.blocks = append(n.blocks, body)
			}
			return n, p.closeTag()
		}
	case "for":
		n := forNode{line: kw.line}
		for {
			v, err := p.name()
			if err != nil {
				return nil, err
			}
			n.vars = append(n.vars, v)
			if !p.is(tOp, ",") {
				break
			}
			p.pos++
		}
		if err := p.expect(tName, "in"); err != nil {
			return nil, err
		}
		var err error
		if n.iter, err = p.orExpr(); err != nil {
			return nil, err
		}
		if p.is(tName, "if") {
			p.pos++
			if n.cond, err = p.orExpr(); err != nil {
				return nil, err
			}
		}
		if p.is(tName, "recursive") {
			return nil, p.errf("unsupported: recursive for loops")
		}
		if err := p.closeTag(); err != nil {
			return nil, err
		}
		body, end, err := p.block()
		if err != nil {
			return nil, err
		}
		n.body = body
		if end == "else" {
			p.pos++
			if err := p.closeTag(); err != nil {
				return nil, err
			}
			if n.els, end, err = p.block(); err != nil {
				return nil, err
			}
		}
		if end != "endfor" {
			return nil, fmt.Errorf("line %d: {%% for %%} from line %d has no {%% endfor %%}", p.peek().line, kw.line)
		}
		p.pos++
		return n, p.closeTag()
	case "set":
		n := setNode{line: kw.line}
		var err error
		if n.name, err = p.name(); err != nil {
			return nil, err
		}
		if p.is(tOp, ".") {
			p.pos++
			if n.attr, err = p.name(); err != nil {
				return nil, err
			}
		}
		if p.is(tClose, "%}") {
			return nil, p.errf("unsupported: block {%% set %%} (set with {%% endset %%})")
		}
		if p.is(tOp, ",") {
			return nil, p.errf("unsupported: {%% set %%} of several names")
		}
		if err := p.expect(tOp, "="); err != nil {
			return nil, err
		}
		if n.e, err = p.expr(); err != nil {
			return nil, err
		}
		return n, p.closeTag()
	case "break", "continue":
		return loopCtl(kw.val), p.closeTag()
	case "generation", "endgeneration":
		// transformers' assistant-mask markers; they render nothing.
		return nil, p.closeTag()
	}
	return nil, fmt.Errorf("line %d: unsupported statement {%% %s %%}", kw.line, kw.val)
}

// Expression grammar, lowest precedence first, as Jinja's parser:
// conditional, or, and, not, comparisons (incl. in / not in), ~, + -,
// * / // %, unary -, then primary with postfix (. [] () | is).
func (p *parser) expr() (expr, error) {
	a, err := p.orExpr()
	if err != nil {
		return nil, err
	}
	if !p.is(tName, "if") {
		return a, nil
	}
	p.pos++
	cond, err := p.orExpr()
	if err != nil {
		return nil, err
	}
	var b expr = literal{undefined{"the else branch"}}
	if p.is(tName, "else") {
		p.pos++
		if b, err = p.expr(); err != nil {
			return nil, err
		}
	}
	return condExpr{cond, a, b}, nil
}

func (p *parser) orExpr() (expr, error) {
	return p.binary([]string{"or"}, p.andExpr)
}

func (p *parser) andExpr() (expr, error) {
	return p.binary([]string{"and"}, p.notExpr)
}

func (p *parser) notExpr() (expr, error) {
	if p.is(tName, "not") {
		line := p.next().line
		x, err := p.notExpr()
		if err != nil {
			return nil, err
		}
		return unaryExpr{"not", x, line}, nil
	}
	return p.compare()
}

func (p *parser) compare() (expr, error) {
	l, err := p.concat()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op := ""
		switch {
		case t.kind == tOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == ">" || t.val == "<=" || t.val == ">="):
			op = t.val
			p.pos++
		case t.kind == tName && t.val == "in":
			op = "in"
			p.pos++
		case t.kind == tName && t.val == "not" && p.toks[p.pos+1].kind == tName && p.toks[p.pos+1].val == "in":
			op = "not in"
			p.pos += 2
		default:
			return l, nil
		}
		r, err := p.concat()
		if err != nil {
			return nil, err
		}
		l = binExpr{op, l, r, t.line}
	}
}

func (p *parser) concat() (expr, error) {
	return p.binary([]string{"~"}, p.add)
}

func (p *parser) add() (expr, error) {
	return p.binary([]string{"+", "-"}, p.mul)
}

func (p *parser) mul() (expr, error) {
	return p.binary([]string{"*", "/", "//", "%"}, p.unary)
}

func (p *parser) binary(ops []string, sub func() (expr, error)) (expr, error) {
	l, err := sub()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		found := false
		for _, o := range ops {
			if t.val == o && (t.kind == tOp || t.kind == tName) {
				found = true
			}
		}
		if !found {
			return l, nil
		}
		p.pos++
		r, err := sub()
		if err != nil {
			return nil, err
		}
		l = binExpr{t.val, l, r, t.line}
	}
}

func (p *parser) unary() (expr, error) {
	if p.is(tOp, "-") || p.is(tOp, "+") {
		t := p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return unaryExpr{t.val, x, t.line}, nil
	}
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	return p.postfix(x)
}

func (p *parser) postfix(x expr) (expr, error) {
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && t.val == ".":
			p.pos++
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			x = attrExpr{x, name, t.line}
		case t.kind == tOp && t.val == "[":
			p.pos++
			e, err := p.subscript(x, t.line)
			if err != nil {
				return nil, err
			}
			x = e
		case t.kind == tOp && t.val == "(":
			p.pos++
			args, kwargs, err := p.args()
			if err != nil {
				return nil, err
			}
			x = callExpr{x, args, kwargs, t.line}
		case t.kind == tOp && t.val == "|":
			p.pos++
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			f := filterExpr{x: x, name: name, line: t.line}
			if p.is(tOp, "(") {
				p.pos++
				if f.args, f.kwargs, err = p.args(); err != nil {
					return nil, err
				}
			}
			x = f
		case t.kind == tName && t.val == "is":
			p.pos++
			te := testExpr{x: x, line: t.line}
			if p.is(tName, "not") {
				p.pos++
				te.neg = true
			}
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			te.name = name
			if p.is(tOp, "(") {
				p.pos++
				args, _, err := p.args()
				if err != nil {
					return nil, err
				}
				te.args = args
			} else if nt := p.peek(); nt.kind == tString || nt.kind == tInt || nt.kind == tFloat {
				// Jinja's "x is sameas y"-style single argument without parentheses.
				a, err := p.primary()
				if err != nil {
					return nil, err
				}
				te.args = []expr{a}
			}
			x = te
		default:
			return x, nil
		}
	}
}

// subscript parses x[i] or x[a:b:c] after the "[".
func (p *parser) subscript(x expr, line int) (expr, error) {
	var parts [3]expr
	n := 0
	for {
		if p.is(tOp, "]") {
			p.pos++
			break
		}
		if p.is(tOp, ":") {
			p.pos++
			n++
			if n > 2 {
				return nil, p.errf("a slice has at most 3 parts")
			}
			continue
		}
		if parts[n] != nil {
			return nil, p.errf("expected ':' or ']', found %q", p.peek().val)
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		parts[n] = e
	}
	if n == 0 {
		if parts[0] == nil {
			return nil, fmt.Errorf("line %d: empty subscript []", line)
		}
		return indexExpr{x, parts[0], line}, nil
	}
	return sliceExpr{x, parts[0], parts[1], parts[2], line}, nil
}

func (p *parser) args() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.is(tOp, ")") {
		if p.peek().kind == tName && p.toks[p.pos+1].kind == tOp && p.toks[p.pos+1].val == "=" {
			name := p.next().val
			p.pos++
			e, err := p.expr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{name, e})
		} else {
			if len(kwargs) > 0 {
				return nil, nil, p.errf("positional argument after a keyword argument")
			}
			e, err := p.expr()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, e)
		}
		if p.is(tOp, ",") {
			p.pos++
		} else if !p.is(tOp, ")") {
			return nil, nil, p.errf("expected ',' or ')', found %q", p.peek().val)
		}
	}
	p.pos++
	return args, kwargs, nil
}

func (p *parser) primary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tString:
		s := t.val
		for p.peek().kind == tString { // adjacent literals concatenate
			s += p.next().val
		}
		return literal{s}, nil
	case tInt:
		v, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: integer %s: %w", t.line, t.val, err)
		}
		return literal{v}, nil
	case tFloat:
		v, err := strconv.ParseFloat(t.val, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: number %s: %w", t.line, t.val, err)
		}
		return literal{v}, nil
	case tName:
		switch t.val {
		case "true", "True":
			return literal{true}, nil
		case "false", "False":
			return literal{false}, nil
		case "none", "None":
			return literal{nil}, nil
		}
		return nameExpr{t.val, t.line}, nil
	case tOp:
		switch t.val {
		case "(":
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if p.is(tOp, ",") {
				return nil, p.errf("unsupported: tuples")
			}
			return e, p.expect(tOp, ")")
		case "[":
			var l listExpr
			for !p.is(tOp, "]") {
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				l = append(l, e)
				if p.is(tOp, ",") {
					p.pos++
				} else if !p.is(tOp, "]") {
					return nil, p.errf("expected ',' or ']', found %q", p.peek().val)
				}
			}
			p.pos++
			return l, nil
		case "{":
			var d dictExpr
			for !p.is(tOp, "}") {
				k, err := p.expr()
				if err != nil {
					return nil, err
				}
				if err := p.expect(tOp, ":"); err != nil {
					return nil, err
				}
				v, err := p.expr()
				if err != nil {
					return nil, err
				}
				d.keys = append(d.keys, k)
				d.vals = append(d.vals, v)
				if p.is(tOp, ",") {
					p.pos++
				} else if !p.is(tOp, "}") {
					return nil, p.errf("expected ',' or '}', found %q", p.peek().val)
				}
			}
			p.pos++
			return d, nil
		}
	}
	p.pos--
	return nil, p.errf("unexpected %q in an expression", t.val)
}
