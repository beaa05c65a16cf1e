package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Values while rendering: nil (none), undefined, bool, int64, float64,
// string, []value (list), *dict, builtin functions.
type (
	value     = any
	undefined struct{ name string }
	dict      struct {
		keys []string
		m    map[string]value
		ns   bool // a namespace(): attributes may be assigned
	}
	builtin func(args []value, kwargs map[string]value) (value, error)
)

func newDict() *dict { return &dict{m: map[string]value{}} }

func (d *dict) set(k string, v value) {
	if _, ok := d.m[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.m[k] = v
}

// ErrRaised wraps the message of the template's raise_exception().
var ErrRaised = errors.New("template raised an exception")

type scope struct {
	vars   map[string]value
	parent *scope
}

func (s *scope) get(name string) (value, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

var errBreak, errContinue = errors.New("break"), errors.New("continue")

// Render renders the template with the given variables (messages,
// add_generation_prompt, tools, bos_token, ...). Values may be nil, bool,
// ints, float64, string, []any, []map[string]any, map[string]any (keys in
// sorted order) and json.RawMessage (objects keep their key order).
func (t *Template) Render(vars map[string]any) (string, error) {
	root := &scope{vars: map[string]value{}}
	root.vars["raise_exception"] = builtin(func(args []value, _ map[string]value) (value, error) {
		msg := ""
		if len(args) > 0 {
			msg = str(args[0])
		}
		return nil, fmt.Errorf("%w: %s", ErrRaised, msg)
	})
	root.vars["namespace"] = builtin(func(args []value, kw map[string]value) (value, error) {
		d := newDict()
		d.ns = true
		keys := make([]string, 0, len(kw))
		for k := range kw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			d.set(k, kw[k])
		}
		return d, nil
	})
	// transformers' helper for templates that date the conversation.
	root.vars["strftime_now"] = builtin(func(args []value, _ map[string]value) (value, error) {
		var format string
		ok := len(args) == 1
		if ok {
			format, ok = args[0].(string)
		}
		if !ok {
			return nil, fmt.Errorf("strftime_now takes one format string")
		}
		return strftime(format, time.Now())
	})
	for k, v := range vars {
		cv, err := convert(v)
		if err != nil {
			return "", fmt.Errorf("chat template: variable %s: %w", k, err)
		}
		root.vars[k] = cv
	}
	var b strings.Builder
	if err := renderNodes(t.body, &scope{vars: map[string]value{}, parent: root}, &b); err != nil {
		if err == errBreak || err == errContinue {
			return "", fmt.Errorf("chat template: {%% %v %%} outside a loop", err)
		}
		return "", fmt.Errorf("chat template: %w", err)
	}
	return b.String(), nil
}

// convert turns a Go value into a template value.
func convert(v any) (value, error) {
	switch x := v.(type) {
	case nil, bool, int64, float64, string:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case json.RawMessage:
		dec := json.NewDecoder(strings.NewReader(string(x)))
		dec.UseNumber()
		return decodeJSON(dec)
	case []any:
		return convertList(x)
	case []map[string]any:
		return convertList(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := newDict()
		for _, k := range keys {
			c, err := convert(x[k])
			if err != nil {
				return nil, err
			}
			d.set(k, c)
		}
		return d, nil
	}
	return nil, fmt.Errorf("unsupported Go type %T", v)
}

// decodeJSON reads one JSON value keeping object key order.
func decodeJSON(dec *json.Decoder) (value, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch x := t.(type) {
	case json.Delim:
		if x == '[' {
			l := []value{}
			for dec.More() {
				v, err := decodeJSON(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			return l, err
		}
		d := newDict()
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeJSON(dec)
			if err != nil {
				return nil, err
			}
			d.set(k.(string), v)
		}
		_, err := dec.Token()
		return d, err
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	}
	return t, nil
}

func renderNodes(nodes []node, s *scope, b *strings.Builder) error {
	for _, n := range nodes {
		switch n := n.(type) {
		case textNode:
			b.WriteString(string(n))
		case printNode:
			v, err := eval(n.e, s)
			if err != nil {
				return err
			}
			b.WriteString(str(v))
		case ifNode:
			for i, blk := range n.blocks {
				if i < len(n.conds) {
					c, err := eval(n.conds[i], s)
					if err != nil {
						return err
					}
					if !truthy(c) {
						continue
					}
				}
				if err := renderNodes(blk, s, b); err != nil {
					return err
				}
				break
			}
		case forNode:
			if err := renderFor(n, s, b); err != nil {
				return err
			}
		case setNode:
			v, err := eval(n.e, s)
			if err != nil {
				return err
			}
			if n.attr == "" {
				s.vars[n.name] = v
				continue
			}
			target, _ := s.get(n.name)
			d, ok := target.(*dict)
			if !ok || !d.ns {
				return fmt.Errorf("line %d: {%% set %s.%s %%}: %s is not a namespace()", n.line, n.name, n.attr, n.name)
			}
			d.set(n.attr, v)
		case loopCtl:
			if n == "break" {
				return errBreak
			}
			return errContinue
		}
	}
	return nil
}

func renderFor(n forNode, s *scope, b *strings.Builder) error {
	it, err := eval(n.iter, s)
	if err != nil {
		return err
	}
	var items []value
	switch x := it.(type) {
	case []value:
		items = x
	case *dict:
		for _, k := range x.keys {
			items = append(items, k)
		}
	case string:
		for _, r := range x {
			items = append(items, string(r))
		}
	case undefined, nil:
	default:
		return fmt.Errorf("line %d: cannot loop over %s", n.line, typeName(it))
	}
	inner := &scope{vars: map[string]value{}, parent: s}
	bind := func(item value) error {
		if len(n.vars) == 1 {
			inner.vars[n.vars[0]] = item
			return nil
		}
		l, ok := item.([]value)
		if !ok || len(l) != len(n.vars) {
			return fmt.Errorf("line %d: cannot unpack %s into %d names", n.line, typeName(item), len(n.vars))
		}
		for i, v := range n.vars {
			inner.vars[v] = l[i]
		}
		return nil
	}
	if n.cond != nil {
		var kept []value
		for _, item := range items {
			if err := bind(item); err != nil {
				return err
			}
			c, err := eval(n.cond, inner)
			if err != nil {
				return err
			}
			if truthy(c) {
				kept = append(kept, item)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return renderNodes(n.els, s, b)
	}
	// One scope for all iterations, as @huggingface/jinja: a {% set %} in the
	// body is seen by later iterations but not after the loop.
	for i, item := range items {
		if err := bind(item); err != nil {
			return err
		}
		loop := newDict()
		loop.set("index0", int64(i))
		loop.set("index", int64(i+1))
		loop.set("revindex0", int64(len(items)-1-i))
		loop.set("revindex", int64(len(items)-i))
		loop.set("first", i == 0)
		loop.set("last", i == len(items)-1)
		loop.set("length", int64(len(items)))
		if i > 0 {
			loop.set("previtem", items[i-1])
		}
		if i+1 < len(items) {
			loop.set("nextitem", items[i+1])
		}
		inner.vars["loop"] = loop
		err := renderNodes(n.body, inner, b)
		if err == errBreak {
			break
		}
		if err != nil && err != errContinue {
			return err
		}
	}
	return nil
}

func truthy(v value) bool {
	switch x := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []value:
		return len(x) > 0
	case *dict:
		return len(x.keys) > 0
	}
	return true
}

func typeName(v value) string {
	switch v.(type) {
	case nil:
		return "none"
	case undefined:
		return "undefined"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case string:
		return "string"
	case []value:
		return "list"
	case *dict:
		return "dict"
	}
	return "function"
}

// str is a value's text in output and in ~ and |string.
func str(v value) string {
	switch x := v.(type) {
	case undefined:
		return ""
	case nil:
		return "None"
	case bool:
		// Lower case as @huggingface/jinja (the goldens' reference) prints them.
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e16 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	}
	s, _ := toJSON(v, 0, 0)
	return s
}

// toJSON writes v as the tojson filter does: ", " and ": " separators, or
// newlines and indent spaces per level with indent > 0; non-ASCII as is.
func toJSON(v value, indent, depth int) (string, error) {
	switch x := v.(type) {
	case nil, undefined:
		return "null", nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case string:
		return jsonString(x), nil
	case []value, *dict:
		pad := "\n" + strings.Repeat(" ", indent*depth)
		child := pad + strings.Repeat(" ", indent)
		var parts []string
		if l, ok := x.([]value); ok {
			for _, e := range l {
				s, err := toJSON(e, indent, depth+1)
				if err != nil {
					return "", err
				}
				parts = append(parts, s)
			}
			if indent > 0 {
				return "[" + child + strings.Join(parts, ","+child) + pad + "]", nil
			}
			return "[" + strings.Join(parts, ", ") + "]", nil
		}
		d := x.(*dict)
		for _, k := range d.keys {
			s, err := toJSON(d.m[k], indent, depth+1)
			if err != nil {
				return "", err
			}
			if indent > 0 {
				parts = append(parts, child+jsonString(k)+": "+s)
			} else {
				parts = append(parts, jsonString(k)+": "+s)
			}
		}
		if indent > 0 {
			return "{" + strings.Join(parts, ",") + pad + "}", nil
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	}
	return "", fmt.Errorf("cannot convert %s to JSON", typeName(v))
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func eval(e expr, s *scope) (value, error) {
	switch e := e.(type) {
	case literal:
		return e.v, nil
	case nameExpr:
		if v, ok := s.get(e.name); ok {
			return v, nil
		}
		return undefined{e.name}, nil
	case listExpr:
		l, err := evalList(e, s)
		if err != nil {
			return nil, err
		}
		return l, nil
	case dictExpr:
		d := newDict()
		for i := range e.keys {
			k, err := eval(e.keys[i], s)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("unsupported: dict key of type %s", typeName(k))
			}
			v, err := eval(e.vals[i], s)
			if err != nil {
				return nil, err
			}
			d.set(ks, v)
		}
		return d, nil
	case attrExpr:
		x, err := eval(e.x, s)
		if err != nil {
			return nil, err
		}
		v, err := getAttr(x, e.name)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", e.line, err)
		}
		return v, nil
	case indexExpr:
		x, err := eval(e.x, s)
		if err != nil {
			return nil, err
		}
		i, err := eval(e.i, s)
		if err != nil {
			return nil, err
		}
		return getItem(x, i, e.line)
	case sliceExpr:
		return evalSlice(e, s)
	case callExpr:
		return evalCall(e, s)
	case filterExpr:
		return evalFilter(e, s)
	case testExpr:
		x, err := eval(e.x, s)
		if err != nil {
			return nil, err
		}
		args, err := evalList(e.args, s)
		if err != nil {
			return nil, err
		}
		r, err := runTest(e.name, x, args)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", e.line, err)
		}
		return r != e.neg, nil
	case unaryExpr:
		x, err := eval(e.x, s)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "not":
			return !truthy(x), nil
		case "-":
			switch n := x.(type) {
			case int64:
				return -n, nil
			case float64:
				return -n, nil
			}
			return nil, fmt.Errorf("line %d: cannot negate %s", e.line, typeName(x))
		}
		return x, nil
	case condExpr:
		c, err := eval(e.cond, s)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return eval(e.a, s)
		}
		return eval(e.b, s)
	case binExpr:
		return evalBinary(e, s)
	}
	return nil, fmt.Errorf("unsupported expression %T", e)
}

func evalList(es []expr, s *scope) ([]value, error) {
	out := make([]value, len(es))
	for i, e := range es {
		v, err := eval(e, s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func evalKwargs(kws []kwarg, s *scope) (map[string]value, error) {
	m := map[string]value{}
	for _, kw := range kws {
		v, err := eval(kw.e, s)
		if err != nil {
			return nil, err
		}
		m[kw.name] = v
	}
	return m, nil
}

func getAttr(x value, name string) (value, error) {
	switch o := x.(type) {
	case *dict:
		if v, ok := o.m[name]; ok {
			return v, nil
		}
		if f := dictMethod(o, name); f != nil {
			return f, nil
		}
		return undefined{name}, nil
	case string:
		if f := stringMethod(o, name); f != nil {
			return f, nil
		}
		return undefined{name}, nil
	case undefined:
		return nil, fmt.Errorf("%s is undefined (getting .%s)", o.name, name)
	case nil:
		return nil, fmt.Errorf("none has no attribute %s", name)
	}
	return undefined{name}, nil
}

func getItem(x, i value, line int) (value, error) {
	switch o := x.(type) {
	case *dict:
		k, ok := i.(string)
		if !ok {
			return undefined{str(i)}, nil
		}
		if v, ok := o.m[k]; ok {
			return v, nil
		}
		return undefined{k}, nil
	case []value, string:
		n, ok := i.(int64)
		if !ok {
			return nil, fmt.Errorf("line %d: %s index must be an integer, not %s", line, typeName(x), typeName(i))
		}
		if l, ok := o.([]value); ok {
			if n < 0 {
				n += int64(len(l))
			}
			if n < 0 || n >= int64(len(l)) {
				return undefined{"list item"}, nil
			}
			return l[n], nil
		}
		r := []rune(o.(string))
		if n < 0 {
			n += int64(len(r))
		}
		if n < 0 || n >= int64(len(r)) {
			return undefined{"string item"}, nil
		}
		return string(r[n]), nil
	case undefined:
		return nil, fmt.Errorf("line %d: %s is undefined (getting an item)", line, o.name)
	}
	return nil, fmt.Errorf("line %d: cannot index %s", line, typeName(x))
}

func evalSlice(e sliceExpr, s *scope) (value, error) {
	x, err := eval(e.x, s)
	if err != nil {
		return nil, err
	}
	var n int
	var runes []rune
	switch o := x.(type) {
	case []value:
		n = len(o)
	case string:
		runes = []rune(o)
		n = len(runes)
	default:
		return nil, fmt.Errorf("line %d: cannot slice %s", e.line, typeName(x))
	}
	bound := func(b expr, def int64) (int64, error) {
		if b == nil {
			return def, nil
		}
		v, err := eval(b, s)
		if err != nil {
			return 0, err
		}
		i, ok := v.(int64)
		if !ok {
			return 0, fmt.Errorf("line %d: slice bound must be an integer, not %s", e.line, typeName(v))
		}
		return i, nil
	}
	step, err := bound(e.step, 1)
	if err != nil {
		return nil, err
	}
	if step == 0 {
		return nil, fmt.Errorf("line %d: slice step cannot be zero", e.line)
	}
	// Python's slice.indices.
	lo, hi := int64(0), int64(n)
	if step < 0 {
		lo, hi = -1, int64(n)-1
	}
	clamp := func(i int64) int64 {
		if i < 0 {
			i += int64(n)
			if i < lo {
				i = lo
			}
		} else if i > hi {
			i = hi
		}
		return i
	}
	defStart, defStop := lo, hi
	if step < 0 {
		defStart, defStop = hi, lo
	}
	start, err := bound(e.start, defStart)
	if err != nil {
		return nil, err
	}
	stop, err := bound(e.stop, defStop)
	if err != nil {
		return nil, err
	}
	if e.start != nil {
		start = clamp(start)
	}
	if e.stop != nil {
		stop = clamp(stop)
	}
	var idx []int64
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		idx = append(idx, i)
	}
	l, ok := x.([]value)
	if !ok {
		out := make([]rune, len(idx))
		for k, i := range idx {
			out[k] = runes[i]
		}
		return string(out), nil
	}
	out := make([]value, len(idx))
	for k, i := range idx {
		out[k] = l[i]
	}
	return out, nil
}

func evalCall(e callExpr, s *scope) (value, error) {
	fn, err := eval(e.fn, s)
	if err != nil {
		return nil, err
	}
	f, ok := fn.(builtin)
	if !ok {
		name := "value"
		if n, ok := e.fn.(nameExpr); ok {
			name = n.name
		}
		if _, ok := fn.(undefined); ok {
			return nil, fmt.Errorf("line %d: unsupported: function %s is not defined", e.line, name)
		}
		return nil, fmt.Errorf("line %d: %s (%s) is not callable", e.line, name, typeName(fn))
	}
	args, err := evalList(e.args, s)
	if err != nil {
		return nil, err
	}
	kw, err := evalKwargs(e.kwargs, s)
	if err != nil {
		return nil, err
	}
	v, err := f(args, kw)
	if err != nil && !errors.Is(err, ErrRaised) {
		return nil, fmt.Errorf("line %d: %w", e.line, err)
	}
	return v, err
}

func evalBinary(e binExpr, s *scope) (value, error) {
	l, err := eval(e.l, s)
	if err != nil {
		return nil, err
	}
	switch e.op {
	case "and":
		if !truthy(l) {
			return l, nil
		}
		return eval(e.r, s)
	case "or":
		if truthy(l) {
			return l, nil
		}
		return eval(e.r, s)
	}
	r, err := eval(e.r, s)
	if err != nil {
		return nil, err
	}
	switch e.op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "~":
		return str(l) + str(r), nil
	case "in", "not in":
		in, err := contains(r, l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", e.line, err)
		}
		return in == (e.op == "in"), nil
	}
	if ls, ok := l.(string); ok {
		if rs, ok := r.(string); ok {
			switch e.op {
			case "+":
				return ls + rs, nil
			case "<":
				return ls < rs, nil
			case ">":
				return ls > rs, nil
			case "<=":
				return ls <= rs, nil
			case ">=":
				return ls >= rs, nil
			}
		}
	}
	if ll, ok := l.([]value); ok && e.op == "+" {
		if rl, ok := r.([]value); ok {
			return append(append([]value{}, ll...), rl...), nil
		}
	}
	li, lint := l.(int64)
	ri, rint := r.(int64)
	lf, lok := number(l)
	rf, rok := number(r)
	if !lok || !rok {
		return nil, fmt.Errorf("line %d: unsupported operand types for %s: %s and %s", e.line, e.op, typeName(l), typeName(r))
	}
	if lint && rint {
		switch e.op {
		case "+":
			return li + ri, nil
		case "-":
			return li - ri, nil
		case "*":
			return li * ri, nil
		case "//", "%":
			if ri == 0 {
				return nil, fmt.Errorf("line %d: division by zero", e.line)
			}
			q, m := li/ri, li%ri
			if m != 0 && (m < 0) != (ri < 0) { // Python floors
				q--
				m += ri
			}
			if e.op == "//" {
				return q, nil
			}
			return m, nil
		}
	}
	switch e.op {
	case "+":
		return lf + rf, nil
	case "-":
		return lf - rf, nil
	case "*":
		return lf * rf, nil
	case "/":
		if rf == 0 {
			return nil, fmt.Errorf("line %d: division by zero", e.line)
		}
		return lf / rf, nil
	case "<":
		return lf < rf, nil
	case ">":
		return lf > rf, nil
	case "<=":
		return lf <= rf, nil
	case ">=":
		return lf >= rf, nil
	}
	return nil, fmt.Errorf("line %d: unsupported: operator %s on %s and %s", e.line, e.op, typeName(l), typeName(r))
}

func number(v value) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func equal(a, b value) bool {
	if af, ok := number(a); ok {
		bf, ok := number(b)
		return ok && af == bf
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case undefined:
		_, ok := b.(undefined)
		return ok
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []value:
		y, ok := b.([]value)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case *dict:
		y, ok := b.(*dict)
		if !ok || len(x.keys) != len(y.keys) {
			return false
		}
		for _, k := range x.keys {
			yv, ok := y.m[k]
			if !ok || !equal(x.m[k], yv) {
				return false
			}
		}
		return true
	}
	return false
}

func contains(container, item value) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' needs a string, not %s", typeName(item))
		}
		return strings.Contains(c, s), nil
	case []value:
		for _, e := range c {
			if equal(e, item) {
				return true, nil
			}
		}
		return false, nil
	case *dict:
		s, ok := item.(string)
		if !ok {
			return false, nil
		}
		_, found := c.m[s]
		return found, nil
	case undefined, nil:
		return false, nil
	}
	return false, fmt.Errorf("cannot test membership in %s", typeName(container))
}

func runTest(name string, x value, args []value) (bool, error) {
	switch name {
	case "defined":
		_, u := x.(undefined)
		return !u, nil
	case "undefined":
		_, u := x.(undefined)
		return u, nil
	case "none":
		return x == nil, nil
	case "string":
		_, ok := x.(string)
		return ok, nil
	case "number":
		_, i := x.(int64)
		_, f := x.(float64)
		return i || f, nil
	case "integer":
		_, ok := x.(int64)
		return ok, nil
	case "float":
		_, ok := x.(float64)
		return ok, nil
	case "boolean":
		_, ok := x.(bool)
		return ok, nil
	case "true":
		b, ok := x.(bool)
		return ok && b, nil
	case "false":
		b, ok := x.(bool)
		return ok && !b, nil
	case "mapping":
		_, ok := x.(*dict)
		return ok, nil
	case "sequence", "iterable":
		switch x.(type) {
		case []value, string, *dict:
			return true, nil
		}
		return false, nil
	case "callable":
		_, ok := x.(builtin)
		return ok, nil
	case "equalto", "eq", "==", "sameas":
		if len(args) != 1 {
			return false, fmt.Errorf("test %s takes one argument", name)
		}
		return equal(x, args[0]), nil
	case "odd", "even":
		n, ok := x.(int64)
		if !ok {
			return false, fmt.Errorf("test %s needs an integer, not %s", name, typeName(x))
		}
		return (n%2 != 0) == (name == "odd"), nil
	}
	return false, fmt.Errorf("unsupported test %q", name)
}

func stringMethod(s string, name string) builtin {
	strip := func(f func(string, string) string, g func(string, func(rune) bool) string) builtin {
		return func(args []value, _ map[string]value) (value, error) {
			if len(args) > 0 && args[0] != nil {
				chars, ok := args[0].(string)
				if !ok {
					return nil, fmt.Errorf("%s: argument must be a string", name)
				}
				return f(s, chars), nil
			}
			return g(s, unicode.IsSpace), nil
		}
	}
	oneString := func(f func(string) value) builtin {
		return func(args []value, _ map[string]value) (value, error) {
			if len(args) != 1 {
				return nil, fmt.Errorf("%s takes one argument", name)
			}
			a, ok := args[0].(string)
			if !ok {
				return nil, fmt.Errorf("%s: argument must be a string, not %s", name, typeName(args[0]))
			}
			return f(a), nil
		}
	}
	switch name {
	case "strip":
		return strip(strings.Trim, strings.TrimFunc)
	case "lstrip":
		return strip(strings.TrimLeft, strings.TrimLeftFunc)
	case "rstrip":
		return strip(strings.TrimRight, strings.TrimRightFunc)
	case "startswith":
		return oneString(func(a string) value { return strings.HasPrefix(s, a) })
	case "endswith":
		return oneString(func(a string) value { return strings.HasSuffix(s, a) })
	case "upper":
		return func([]value, map[string]value) (value, error) { return strings.ToUpper(s), nil }
	case "lower":
		return func([]value, map[string]value) (value, error) { return strings.ToLower(s), nil }
	case "title":
		return func([]value, map[string]value) (value, error) { return title(s), nil }
	case "replace":
		return func(args []value, _ map[string]value) (value, error) {
			return replace(s, args)
		}
	case "split":
		return func(args []value, _ map[string]value) (value, error) {
			var parts []string
			if len(args) == 0 || args[0] == nil {
				parts = strings.Fields(s)
			} else {
				sep, ok := args[0].(string)
				if !ok || sep == "" {
					return nil, fmt.Errorf("split: separator must be a non-empty string")
				}
				n := -1
				if len(args) > 1 {
					m, ok := args[1].(int64)
					if !ok {
						return nil, fmt.Errorf("split: maxsplit must be an integer")
					}
					if m >= 0 {
						n = int(m) + 1
					}
				}
				parts = strings.SplitN(s, sep, n)
			}
			out := make([]value, len(parts))
			for i, p := range parts {
				out[i] = p
			}
			return out, nil
		}
	}
	return nil
}

func title(s string) string {
	r := []rune(s)
	prev := ' '
	for i, c := range r {
		if unicode.IsLetter(prev) {
			r[i] = unicode.ToLower(c)
		} else {
			r[i] = unicode.ToUpper(c)
		}
		prev = c
	}
	return string(r)
}

func replace(s string, args []value) (value, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("replace takes two strings")
	}
	old, ok1 := args[0].(string)
	nw, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("replace takes two strings")
	}
	n := -1
	if len(args) > 2 {
		c, ok := args[2].(int64)
		if !ok {
			return nil, fmt.Errorf("replace: count must be an integer")
		}
		n = int(c)
	}
	return strings.Replace(s, old, nw, n), nil
}

func dictMethod(d *dict, name string) builtin {
	switch name {
	case "items":
		return func([]value, map[string]value) (value, error) {
			out := make([]value, len(d.keys))
			for i, k := range d.keys {
				out[i] = []value{k, d.m[k]}
			}
			return out, nil
		}
	case "keys":
		return func([]value, map[string]value) (value, error) {
			out := make([]value, len(d.keys))
			for i, k := range d.keys {
				out[i] = k
			}
			return out, nil
		}
	case "values":
		return func([]value, map[string]value) (value, error) {
			out := make([]value, len(d.keys))
			for i, k := range d.keys {
				out[i] = d.m[k]
			}
			return out, nil
		}
	case "get":
		return func(args []value, _ map[string]value) (value, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("get takes a key")
			}
			k, _ := args[0].(string)
			if v, ok := d.m[k]; ok {
				return v, nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return nil, nil
		}
	}
	return nil
}

func evalFilter(e filterExpr, s *scope) (value, error) {
	x, err := eval(e.x, s)
	if err != nil {
		return nil, err
	}
	args, err := evalList(e.args, s)
	if err != nil {
		return nil, err
	}
	kw, err := evalKwargs(e.kwargs, s)
	if err != nil {
		return nil, err
	}
	v, err := filter(e.name, x, args, kw)
	if err != nil {
		return nil, fmt.Errorf("line %d: filter %s: %w", e.line, e.name, err)
	}
	return v, nil
}

func asList(x value) ([]value, error) {
	switch o := x.(type) {
	case []value:
		return o, nil
	case *dict:
		out := make([]value, len(o.keys))
		for i, k := range o.keys {
			out[i] = k
		}
		return out, nil
	case string:
		var out []value
		for _, r := range o {
			out = append(out, string(r))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not a sequence", typeName(x))
}

func filter(name string, x value, args []value, kw map[string]value) (value, error) {
	switch name {
	case "trim", "upper", "lower", "title":
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("needs a string, not %s", typeName(x))
		}
		if name == "trim" {
			if len(args) > 0 {
				return stringMethod(s, "strip")(args, nil)
			}
			return strings.TrimFunc(s, unicode.IsSpace), nil
		}
		return stringMethod(s, name)(nil, nil)
	case "replace":
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("needs a string, not %s", typeName(x))
		}
		return replace(s, args)
	case "length", "count":
		switch o := x.(type) {
		case string:
			return int64(len([]rune(o))), nil
		case []value:
			return int64(len(o)), nil
		case *dict:
			return int64(len(o.keys)), nil
		case undefined:
			return int64(0), nil
		}
		return nil, fmt.Errorf("%s has no length", typeName(x))
	case "tojson":
		indent := int64(0)
		if v, ok := kw["indent"]; ok {
			indent, _ = v.(int64)
		} else if len(args) > 0 {
			indent, _ = args[0].(int64)
		}
		return toJSON(x, int(indent), 0)
	case "string":
		return str(x), nil
	case "int":
		switch o := x.(type) {
		case int64:
			return o, nil
		case float64:
			return int64(o), nil
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(o), 10, 64)
			if err != nil {
				return int64(0), nil
			}
			return n, nil
		}
		return int64(0), nil
	case "default", "d":
		useFalsy := len(args) > 1 && truthy(args[1])
		if _, u := x.(undefined); u || useFalsy && !truthy(x) {
			if len(args) > 0 {
				return args[0], nil
			}
			return "", nil
		}
		return x, nil
	case "first", "last":
		l, err := asList(x)
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			return undefined{name}, nil
		}
		if name == "first" {
			return l[0], nil
		}
		return l[len(l)-1], nil
	case "list":
		l, err := asList(x)
		if err != nil {
			return nil, err
		}
		return append([]value{}, l...), nil
	case "reverse":
		if s, ok := x.(string); ok {
			r := []rune(s)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			return string(r), nil
		}
		l, err := asList(x)
		if err != nil {
			return nil, err
		}
		out := make([]value, len(l))
		for i, v := range l {
			out[len(l)-1-i] = v
		}
		return out, nil
	case "join":
		l, err := asList(x)
		if err != nil {
			return nil, err
		}
		sep := ""
		if len(args) > 0 {
			sep = str(args[0])
		}
		parts := make([]string, len(l))
		for i, v := range l {
			parts[i] = str(v)
		}
		return strings.Join(parts, sep), nil
	case "items":
		d, ok := x.(*dict)
		if !ok {
			return nil, fmt.Errorf("needs a dict, not %s", typeName(x))
		}
		return dictMethod(d, "items")(nil, nil)
	case "map":
		l, err := asList(x)
		if err != nil {
			return nil, err
		}
		attr, ok := kw["attribute"].(string)
		if !ok {
			return nil, fmt.Errorf("unsupported: map without attribute=")
		}
		out := make([]value, len(l))
		for i, v := range l {
			if out[i], err = getAttr(v, attr); err != nil {
				return nil, err
			}
		}
		return out, nil
	case "selectattr", "rejectattr":
		l, err := asList(x)
		if err != nil {
			return nil, err
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("needs an attribute name")
		}
		attr, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("attribute name must be a string")
		}
		var out []value
		for _, v := range l {
			a, err := getAttr(v, attr)
			if err != nil {
				return nil, err
			}
			keep := truthy(a)
			if len(args) > 1 {
				test, ok := args[1].(string)
				if !ok {
					return nil, fmt.Errorf("test name must be a string")
				}
				if keep, err = runTest(test, a, args[2:]); err != nil {
					return nil, err
				}
			}
			if keep == (name == "selectattr") {
				out = append(out, v)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported filter")
}

// convertList converts each element of a Go slice.
func convertList[E any](x []E) (value, error) {
	l := make([]value, len(x))
	for i, e := range x {
		c, err := convert(e)
		if err != nil {
			return nil, err
		}
		l[i] = c
	}
	return l, nil
}
