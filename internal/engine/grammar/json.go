package grammar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// JSONObject compiles OpenAI's response_format json_object: any JSON
// object.
func JSONObject() *Grammar {
	b := newBuilder()
	j := newJSONc(b, nil)
	g, err := b.build(b.rule(cat([]sym{j.ws()}, []sym{j.anyObject()})), "json_object")
	if err != nil {
		panic(err) // a fixed grammar: cannot fail
	}
	return g
}

// JSONSchema compiles a JSON Schema into a grammar of the JSON documents
// that validate against it. Supported: type (one or a list), properties
// (written in their order; an object with properties holds no others),
// required, additionalProperties, items, minItems, maxItems, enum, const,
// anyOf, $ref to "#", "#/$defs/…" or "#/definitions/…", string pattern,
// format (date, time, date-time, uuid, email), minLength, maxLength, and the
// annotations title, description, default, examples, $schema, $id,
// $comment. Any other keyword is an ErrUnsupported naming it.
func JSONSchema(schema []byte) (*Grammar, error) {
	d := newJSONDecoder(schema)
	root, err := decodeOrdered(d)
	if err == nil {
		if _, e := d.Token(); e != io.EOF {
			err = fmt.Errorf("trailing data")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: schema is not JSON: %v", ErrInvalid, err)
	}
	b := newBuilder()
	j := newJSONc(b, root)
	v, err := j.value(root, "")
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, schema)
	return b.build(b.rule([]sym{j.ws(), v}), "json_schema:"+compact.String())
}

type jsonc struct {
	b     *builder
	root  any
	refs  map[string]int32 // $ref -> rule
	cache map[string]sym
}

func newJSONc(b *builder, root any) *jsonc {
	return &jsonc{b: b, root: root, refs: map[string]int32{}, cache: map[string]sym{}}
}

// once builds a shared rule the first time it is asked for.
func (j *jsonc) once(name string, f func() []sym) sym {
	if s, ok := j.cache[name]; ok {
		return s
	}
	id := j.b.reserve()
	s := sym{ref: true, id: id}
	j.cache[name] = s
	j.b.define(id, f())
	return s
}

// ws is optional whitespace after a token: a space, or a newline and up to
// 20 spaces or tabs (llama.cpp's json-schema-to-grammar), so whitespace
// cannot run on forever.
func (j *jsonc) ws() sym {
	return j.once("ws", func() []sym {
		b := j.b
		tab := b.set(func() byteSet { s := setOf(' ', ' '); s.add('\t', '\t'); return s }())
		nl := cat(b.lit("\n"), b.rep([]sym{tab}, 0, 20))
		return []sym{b.alt(nil, b.lit(" "), nl)}
	})
}

// char is one JSON string character (valid UTF-8, escapes included).
func (j *jsonc) char() sym {
	return j.once("char", func() []sym {
		b := j.b
		c := rxc{b: b, json: true}
		hex := b.set(func() byteSet { s := setOf('0', '9'); s.add('a', 'f'); s.add('A', 'F'); return s }())
		esc := b.set(func() byteSet {
			var s byteSet
			for _, ch := range `"\/bfnrt` {
				s.add(byte(ch), byte(ch))
			}
			return s
		}())
		raw := c.class([][2]rune{{0x20, 0x10FFFF}}) // escapes of " and \ included
		return []sym{b.alt([]sym{raw}, cat(b.lit(`\`), []sym{esc}), cat(b.lit(`\u`), []sym{hex, hex, hex, hex}))}
	})
}

func (j *jsonc) anyString() sym {
	return j.once("string", func() []sym {
		return cat(j.b.lit(`"`), []sym{j.b.star([]sym{j.char()})}, j.b.lit(`"`), []sym{j.ws()})
	})
}

// number and integer bound their digits as llama.cpp does, so a model
// cannot write digits forever.
func (j *jsonc) integer() sym {
	return j.once("integer", func() []sym {
		b := j.b
		d := b.set(setOf('0', '9'))
		nz := cat([]sym{b.set(setOf('1', '9'))}, b.rep([]sym{d}, 0, 15))
		return cat([]sym{b.opt(b.lit("-"))}, []sym{b.alt(b.lit("0"), nz)}, []sym{j.ws()})
	})
}

func (j *jsonc) number() sym {
	return j.once("number", func() []sym {
		b := j.b
		d := b.set(setOf('0', '9'))
		nz := cat([]sym{b.set(setOf('1', '9'))}, b.rep([]sym{d}, 0, 15))
		frac := cat(b.lit("."), b.rep([]sym{d}, 1, 16))
		sign := b.set(func() byteSet { s := setOf('-', '-'); s.add('+', '+'); return s }())
		e := b.set(func() byteSet { s := setOf('e', 'e'); s.add('E', 'E'); return s }())
		exp := cat([]sym{e, b.opt([]sym{sign})}, b.rep([]sym{d}, 1, 3))
		return cat([]sym{b.opt(b.lit("-")), b.alt(b.lit("0"), nz), b.opt(frac), b.opt(exp), j.ws()})
	})
}

func (j *jsonc) anyValue() sym {
	return j.once("value", func() []sym {
		b := j.b
		return []sym{b.alt(
			[]sym{j.anyObject()}, []sym{j.anyArray()}, []sym{j.anyString()}, []sym{j.number()},
			cat(b.lit("true"), []sym{j.ws()}), cat(b.lit("false"), []sym{j.ws()}), cat(b.lit("null"), []sym{j.ws()}),
		)}
	})
}

func (j *jsonc) anyObject() sym { return j.mapOf("object", j.anyValue) }

// mapOf is an object with any keys and values from val.
func (j *jsonc) mapOf(name string, val func() sym) sym {
	return j.once(name, func() []sym {
		b := j.b
		kv := cat([]sym{j.anyString()}, b.lit(":"), []sym{j.ws(), val()})
		more := b.star(cat(b.lit(","), []sym{j.ws()}, kv))
		return cat(b.lit("{"), []sym{j.ws(), b.opt(cat(kv, []sym{more}))}, b.lit("}"), []sym{j.ws()})
	})
}

func (j *jsonc) anyArray() sym {
	return j.once("array", func() []sym {
		b := j.b
		v := j.anyValue()
		more := b.star(cat(b.lit(","), []sym{j.ws(), v}))
		return cat(b.lit("["), []sym{j.ws(), b.opt([]sym{v, more})}, b.lit("]"), []sym{j.ws()})
	})
}

// literal is the JSON text of v followed by whitespace.
func (j *jsonc) literal(v any) sym {
	text, _ := json.Marshal(v)
	return j.b.rule(cat(j.b.lit(string(text)), []sym{j.ws()}))
}

var annotations = map[string]bool{
	"title": true, "description": true, "default": true, "examples": true,
	"$schema": true, "$id": true, "$comment": true, "$defs": true, "definitions": true,
}

var known = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true,
	"items": true, "minItems": true, "maxItems": true, "enum": true, "const": true,
	"anyOf": true, "$ref": true, "pattern": true, "format": true,
	"minLength": true, "maxLength": true,
}

// value compiles schema s; path names it in errors.
func (j *jsonc) value(s any, path string) (sym, error) {
	switch s := s.(type) {
	case bool:
		if s {
			return j.anyValue(), nil
		}
		return sym{}, fmt.Errorf("%w: schema %s is false: nothing validates", ErrInvalid, where(path))
	case *object:
		return j.object(s.vals, path)
	default:
		return sym{}, fmt.Errorf("%w: schema %s must be an object or a boolean", ErrInvalid, where(path))
	}
}

func where(path string) string {
	if path == "" {
		return "at the root"
	}
	return "at " + path
}

func (j *jsonc) object(s map[string]any, path string) (sym, error) {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] && !annotations[k] {
			return sym{}, fmt.Errorf("%w: JSON Schema keyword %q %s", ErrUnsupported, k, where(path))
		}
	}
	if ref, ok := s["$ref"]; ok {
		if len(s) > 1 {
			for _, k := range keys {
				if k != "$ref" && !annotations[k] {
					return sym{}, fmt.Errorf("%w: keyword %q beside $ref %s", ErrUnsupported, k, where(path))
				}
			}
		}
		r, _ := ref.(string)
		return j.ref(r, path)
	}
	if c, ok := s["const"]; ok {
		return j.literal(c), nil
	}
	if e, ok := s["enum"]; ok {
		vals, _ := e.([]any)
		if len(vals) == 0 {
			return sym{}, fmt.Errorf("%w: enum %s must be a non-empty array", ErrInvalid, where(path))
		}
		types, err := typeList(s, path)
		if err != nil {
			return sym{}, err
		}
		var alts [][]sym
		for _, v := range vals {
			if types == nil || slices.Contains(types, kindOf(v)) || (kindOf(v) == "integer" && slices.Contains(types, "number")) {
				alts = append(alts, []sym{j.literal(v)})
			}
		}
		if len(alts) == 0 {
			return sym{}, fmt.Errorf("%w: no enum value %s has the schema's type", ErrInvalid, where(path))
		}
		return j.b.alt(alts...), nil
	}
	if a, ok := s["anyOf"]; ok {
		subs, _ := a.([]any)
		if len(subs) == 0 {
			return sym{}, fmt.Errorf("%w: anyOf %s must be a non-empty array", ErrInvalid, where(path))
		}
		for _, k := range keys {
			if k != "anyOf" && !annotations[k] {
				return sym{}, fmt.Errorf("%w: keyword %q beside anyOf %s", ErrUnsupported, k, where(path))
			}
		}
		alts := make([][]sym, len(subs))
		for i, sub := range subs {
			v, err := j.value(sub, fmt.Sprintf("%s/anyOf/%d", path, i))
			if err != nil {
				return sym{}, err
			}
			alts[i] = []sym{v}
		}
		return j.b.alt(alts...), nil
	}
	types, err := typeList(s, path)
	if err != nil {
		return sym{}, err
	}
	if types == nil {
		types = inferTypes(s)
	}
	if types == nil {
		return j.anyValue(), nil
	}
	alts := make([][]sym, 0, len(types))
	for _, t := range types {
		v, err := j.typed(t, s, path)
		if err != nil {
			return sym{}, err
		}
		alts = append(alts, []sym{v})
	}
	if len(alts) == 1 {
		return alts[0][0], nil
	}
	return j.b.alt(alts...), nil
}

// inferTypes gives a schema without "type" the type its keywords imply.
func inferTypes(s map[string]any) []string {
	for _, k := range []string{"properties", "required", "additionalProperties"} {
		if _, ok := s[k]; ok {
			return []string{"object"}
		}
	}
	for _, k := range []string{"items", "minItems", "maxItems"} {
		if _, ok := s[k]; ok {
			return []string{"array"}
		}
	}
	for _, k := range []string{"pattern", "format", "minLength", "maxLength"} {
		if _, ok := s[k]; ok {
			return []string{"string"}
		}
	}
	return nil
}

func typeList(s map[string]any, path string) ([]string, error) {
	t, ok := s["type"]
	if !ok {
		return nil, nil
	}
	var ts []string
	switch t := t.(type) {
	case string:
		ts = []string{t}
	case []any:
		for _, x := range t {
			str, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%w: type %s must hold strings", ErrInvalid, where(path))
			}
			ts = append(ts, str)
		}
	default:
		return nil, fmt.Errorf("%w: type %s must be a string or an array", ErrInvalid, where(path))
	}
	for _, x := range ts {
		switch x {
		case "object", "array", "string", "number", "integer", "boolean", "null":
		default:
			return nil, fmt.Errorf("%w: type %q %s", ErrInvalid, x, where(path))
		}
	}
	return ts, nil
}

func kindOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	default:
		return "object"
	}
}

func (j *jsonc) typed(t string, s map[string]any, path string) (sym, error) {
	b := j.b
	switch t {
	case "null", "boolean", "number", "integer":
		for _, k := range []string{"properties", "items", "pattern", "format", "minLength", "maxLength", "minItems", "maxItems", "required", "additionalProperties"} {
			if _, ok := s[k]; ok && !slices.Contains(typesOr(s), typeOfKeyword(k)) {
				return sym{}, fmt.Errorf("%w: keyword %q with type %q %s", ErrUnsupported, k, t, where(path))
			}
		}
	}
	switch t {
	case "null":
		return b.rule(cat(b.lit("null"), []sym{j.ws()})), nil
	case "boolean":
		return b.alt(cat(b.lit("true"), []sym{j.ws()}), cat(b.lit("false"), []sym{j.ws()})), nil
	case "integer":
		return j.integer(), nil
	case "number":
		return j.number(), nil
	case "string":
		return j.stringSchema(s, path)
	case "array":
		return j.array(s, path)
	default: // object
		return j.objectSchema(s, path)
	}
}

func typesOr(s map[string]any) []string {
	ts, _ := typeList(s, "")
	return ts
}

func typeOfKeyword(k string) string {
	switch k {
	case "properties", "required", "additionalProperties":
		return "object"
	case "items", "minItems", "maxItems":
		return "array"
	}
	return "string"
}

// count reads a non-negative integer keyword (def when absent).
func count(s map[string]any, k, path string, def int) (int, error) {
	v, ok := s[k]
	if !ok {
		return def, nil
	}
	n, isNum := v.(json.Number)
	i, err := n.Int64()
	if !isNum || err != nil || i < 0 {
		return 0, fmt.Errorf("%w: %s %s must be a non-negative integer", ErrInvalid, k, where(path))
	}
	if i > maxRepeat {
		return 0, fmt.Errorf("%w: %s %d %s is over %d", ErrUnsupported, k, i, where(path), maxRepeat)
	}
	return int(i), nil
}

// formats are the string formats supported, as regexes over the string's
// characters.
var formats = map[string]string{
	"date":      `[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])`,
	"time":      `([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])`,
	"date-time": `[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])`,
	"uuid":      `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`,
	"email":     `[a-zA-Z0-9_+-]{1,32}(\.[a-zA-Z0-9_+-]{1,32}){0,4}@[a-zA-Z0-9]([a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?){0,4}\.[a-zA-Z]{2,8}`,
}

func (j *jsonc) stringSchema(s map[string]any, path string) (sym, error) {
	b := j.b
	pat, hasPat := s["pattern"].(string)
	if _, ok := s["pattern"]; ok && !hasPat {
		return sym{}, fmt.Errorf("%w: pattern %s must be a string", ErrInvalid, where(path))
	}
	if f, ok := s["format"]; ok {
		fs, _ := f.(string)
		re, known := formats[fs]
		if !known {
			return sym{}, fmt.Errorf("%w: string format %q %s (supported: date, time, date-time, uuid, email)", ErrUnsupported, fs, where(path))
		}
		if hasPat {
			return sym{}, fmt.Errorf("%w: format and pattern together %s", ErrUnsupported, where(path))
		}
		pat, hasPat = re, true
	}
	lo, err := count(s, "minLength", path, 0)
	if err != nil {
		return sym{}, err
	}
	hi, err := count(s, "maxLength", path, -1)
	if err != nil {
		return sym{}, err
	}
	_, hasLo := s["minLength"]
	_, hasHi := s["maxLength"]
	if hasPat && (hasLo || hasHi) {
		return sym{}, fmt.Errorf("%w: minLength/maxLength with a pattern or format %s", ErrUnsupported, where(path))
	}
	if hi >= 0 && hi < lo {
		return sym{}, fmt.Errorf("%w: maxLength below minLength %s", ErrInvalid, where(path))
	}
	var body []sym
	if hasPat {
		body, err = b.regex(pat, true)
		if err != nil {
			return sym{}, err
		}
	} else if !hasLo && !hasHi {
		return j.anyString(), nil
	} else {
		body = b.rep([]sym{j.char()}, lo, hi)
	}
	return b.rule(cat(b.lit(`"`), body, b.lit(`"`), []sym{j.ws()})), nil
}

func (j *jsonc) array(s map[string]any, path string) (sym, error) {
	b := j.b
	lo, err := count(s, "minItems", path, 0)
	if err != nil {
		return sym{}, err
	}
	hi, err := count(s, "maxItems", path, -1)
	if err != nil {
		return sym{}, err
	}
	if hi >= 0 && hi < lo {
		return sym{}, fmt.Errorf("%w: maxItems below minItems %s", ErrInvalid, where(path))
	}
	item := j.anyValue()
	if it, ok := s["items"]; ok {
		if item, err = j.value(it, path+"/items"); err != nil {
			return sym{}, err
		}
	}
	sep := cat(b.lit(","), []sym{j.ws(), item})
	var inner []sym
	switch {
	case hi == 0:
	case lo == 0:
		more := -1
		if hi > 0 {
			more = hi - 1
		}
		inner = []sym{b.opt(cat([]sym{item}, b.rep(sep, 0, more)))}
	default:
		more := -1
		if hi > 0 {
			more = hi - 1
		}
		inner = cat([]sym{item}, b.rep(sep, lo-1, more))
	}
	return b.rule(cat(b.lit("["), []sym{j.ws()}, inner, b.lit("]"), []sym{j.ws()})), nil
}

func (j *jsonc) objectSchema(s map[string]any, path string) (sym, error) {
	b := j.b
	po, _ := s["properties"].(*object)
	var props map[string]any
	if po != nil {
		props = po.vals
	}
	if _, ok := s["properties"]; ok && po == nil {
		return sym{}, fmt.Errorf("%w: properties %s must be an object", ErrInvalid, where(path))
	}
	required := map[string]bool{}
	if r, ok := s["required"]; ok {
		list, _ := r.([]any)
		for _, x := range list {
			name, ok := x.(string)
			if !ok {
				return sym{}, fmt.Errorf("%w: required %s must hold strings", ErrInvalid, where(path))
			}
			if _, ok := props[name]; !ok {
				return sym{}, fmt.Errorf("%w: required names %q, which is not in properties %s", ErrUnsupported, name, where(path))
			}
			required[name] = true
		}
	}
	ap, hasAP := s["additionalProperties"]
	if len(props) == 0 {
		if hasAP {
			if f, ok := ap.(bool); ok && !f {
				return b.rule(cat(b.lit("{"), []sym{j.ws()}, b.lit("}"), []sym{j.ws()})), nil
			}
			if m, ok := ap.(*object); ok {
				val, err := j.value(m, path+"/additionalProperties")
				if err != nil {
					return sym{}, err
				}
				return j.mapOf(fmt.Sprintf("map%d", len(j.cache)), func() sym { return val }), nil
			}
		}
		return j.anyObject(), nil
	}
	// Properties in their order in the schema text: json.Decoder into a
	// map loses it, so recover it from the keys' offsets.
	names := po.keys
	kv := make([][]sym, len(names))
	for i, name := range names {
		val, err := j.value(props[name], path+"/properties/"+name)
		if err != nil {
			return sym{}, err
		}
		key, _ := json.Marshal(name)
		kv[i] = cat(b.lit(string(key)), []sym{j.ws()}, b.lit(":"), []sym{j.ws(), val})
	}
	// rest[i]: properties i.. after at least one was written; first[i]:
	// none written yet. Optional properties may be left out.
	n := len(names)
	rest := make([]sym, n+1)
	first := make([]sym, n+1)
	rest[n] = b.rule(nil)
	first[n] = rest[n]
	for i := n - 1; i >= 0; i-- {
		with := cat(b.lit(","), []sym{j.ws()}, kv[i], []sym{rest[i+1]})
		if required[names[i]] {
			rest[i] = b.rule(with)
			first[i] = b.rule(cat(kv[i], []sym{rest[i+1]}))
		} else {
			rest[i] = b.rule(with, []sym{rest[i+1]})
			first[i] = b.rule(cat(kv[i], []sym{rest[i+1]}), []sym{first[i+1]})
		}
	}
	return b.rule(cat(b.lit("{"), []sym{j.ws(), first[0]}, b.lit("}"), []sym{j.ws()})), nil
}

// ref compiles a $ref once (recursion allowed).
func (j *jsonc) ref(r, path string) (sym, error) {
	if id, ok := j.refs[r]; ok {
		return sym{ref: true, id: id}, nil
	}
	var target any
	switch {
	case r == "#":
		target = j.root
	case strings.HasPrefix(r, "#/$defs/"), strings.HasPrefix(r, "#/definitions/"):
		parts := strings.SplitN(r[2:], "/", 2)
		var t any
		if root, ok := j.root.(*object); ok {
			if defs, ok := root.vals[parts[0]].(*object); ok {
				t = defs.vals[strings.ReplaceAll(strings.ReplaceAll(parts[1], "~1", "/"), "~0", "~")]
			}
		}
		if t == nil {
			return sym{}, fmt.Errorf("%w: $ref %q %s points to nothing", ErrInvalid, r, where(path))
		}
		target = t
	default:
		return sym{}, fmt.Errorf("%w: $ref %q %s (only #, #/$defs/… and #/definitions/…)", ErrUnsupported, r, where(path))
	}
	id := j.b.reserve()
	j.refs[r] = id
	v, err := j.value(target, r)
	if err != nil {
		return sym{}, err
	}
	j.b.define(id, []sym{v})
	return sym{ref: true, id: id}, nil
}

// object is a JSON object that keeps its keys' order (properties are
// written in schema order); it marshals back in that order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// maxSchemaDepth bounds nesting in a schema (hostile input).
const maxSchemaDepth = 128

// decodeOrdered reads one JSON value, objects as *object (a repeated key
// keeps its last value, as encoding/json does), numbers as json.Number.
func decodeOrdered(d *json.Decoder) (any, error) { return decodeValue(d, 0) }

func decodeValue(d *json.Decoder, depth int) (any, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxSchemaDepth)
	}
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		o := &object{vals: map[string]any{}}
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			v, err := decodeValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := o.vals[k]; !dup {
				o.keys = append(o.keys, k)
			}
			o.vals[k] = v
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		arr := []any{}
		for d.More() {
			v, err := decodeValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := d.Token()
		return arr, err
	}
	return t, nil
}

func newJSONDecoder(b []byte) *json.Decoder {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d
}
