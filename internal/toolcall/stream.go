package toolcall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"courier/internal/bus"
)

// Stream reads a tool-mode answer as it is generated and splits it
// into content and tool-call pieces, so calls stream as OpenAI's
// delta.tool_calls: a call's first piece (id and name) goes out once its
// name is known to be an offered function and its arguments have begun,
// then the arguments follow fragment by fragment, compacted (whitespace
// outside strings dropped, so the joined arguments are json.Compact's).
//
// It is driven byte by byte, so what it has emitted after a given text is
// the same however the text was cut into pieces: a resumed request replays
// the text already delivered and carries on exactly.
//
// Recognised syntax, by family (the opener may follow content only where
// the family writes content before calls):
//
//	hermes   content <tool_call> {call} </tool_call> <tool_call> {call} ...
//	mistral  content [TOOL_CALLS] [{call}, {call}]
//	mistral-args  content [TOOL_CALLS]NAME[ARGS]ARGS [TOOL_CALLS]NAME[ARGS]ARGS
//	llama3   <|python_tag|>{call}; {call}  or {call} or [{call}, ...] at the start
//	json     {call} or [{call}, ...] at the start
//
// where a call is {"name": NAME, "arguments"|"parameters": ARGS}. Text that
// turns out not to be a call of an offered function is content.
type Stream struct {
	id      string // the request's, for call ids
	opener  string // the literal that opens calls after content; "" none
	atStart bool   // calls may open with a bare { or [ at the start
	hermes  bool   // </tool_call> and <tool_call> separate calls
	named   bool   // mistral-args: the opener is followed by NAME[ARGS], then the arguments
	offers  func(string) bool

	mode    streamMode
	pending []byte // consumed, not emitted: content unless it turns out to be call syntax
	lit     []byte // a literal (opener, hermes tag) being matched
	calls   int    // calls opened (their first piece emitted)

	// The call object being read.
	obj       objState
	raw       []byte // the key or name string being read, or captured arguments
	key       string
	name      string
	haveName  bool
	open      bool // this object's call was opened: its arguments stream
	args      []byte
	haveArgs  bool
	argsStr   bool // arguments written as a JSON string holding the JSON
	val       valueScan
	valKind   valueKind
	skipValue bool

	// This feed's output: deltas[i]'s arguments are argBuf[spans[i][0]:spans[i][1]]
	// (joined in feed, aliasing argBuf: nothing is allocated per token).
	content []byte
	deltas  []bus.ToolCallDelta
	argBuf  []byte
	spans   [][2]int
}

type streamMode uint8

const (
	modeStart   streamMode = iota // nothing but whitespace yet
	modeContent                   // content (watching for the opener)
	modeCalls                     // between calls
	modeObject                    // inside a call object
	modeName                      // mistral-args: reading NAME[ARGS]
)

type objState uint8

const (
	objKey0  objState = iota // expect a key or }
	objKey                   // in a key string
	objColon                 // expect :
	objVal0                  // expect a value
	objVal                   // in a value
	objAfter                 // expect , or }
)

type valueKind uint8

const (
	valOther valueKind = iota
	valName
	valArgs
)

// New returns the reader of the answers of a model family whose tool-call
// syntax is format (grammar.ToolFormat's Name) to a request id offering
// the functions offers accepts; call ids are made from id.
func New(format string, offers func(name string) bool, id string) *Stream {
	s := &Stream{id: id, offers: offers}
	switch format {
	case "hermes":
		s.opener, s.hermes = "<tool_call>", true
	case "mistral":
		s.opener = "[TOOL_CALLS]"
	case "mistral-args":
		s.opener, s.named = "[TOOL_CALLS]", true
	case "llama3":
		s.opener, s.atStart = "<|python_tag|>", true
	default:
		s.atStart = true
	}
	return s
}

// Feed reads text and returns the content and call pieces it releases.
// The results alias the stream's buffers: they are valid until the next
// call (a chunk carries them to send, which keeps nothing), and a caller
// that keeps them copies them.
func (s *Stream) Feed(text string) (content string, deltas []bus.ToolCallDelta) {
	s.content, s.deltas, s.argBuf, s.spans = s.content[:0], s.deltas[:0], s.argBuf[:0], s.spans[:0]
	for i := 0; i < len(text); i++ {
		s.step(text[i])
	}
	for i, sp := range s.spans {
		s.deltas[i].Arguments = bus.AliasString(s.argBuf[sp[0]:sp[1]])
	}
	return bus.AliasString(s.content), s.deltas
}

// Finish ends the answer: text still held back is content when no call
// was made (the answer was not a call), and dropped after calls (an
// unfinished call's syntax). It reports the calls made.
func (s *Stream) Finish() (content string, calls int) {
	s.content = s.content[:0]
	switch {
	case s.mode == modeContent || s.calls == 0:
		s.content = append(append(s.content, s.pending...), s.lit...)
	}
	s.pending, s.lit = s.pending[:0], s.lit[:0]
	return string(s.content), s.calls
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\t' || b == '\r' }

func (s *Stream) step(b byte) {
	switch s.mode {
	case modeStart:
		switch {
		case isSpace(b):
			s.pending = append(s.pending, b)
		case s.atStart && (b == '{' || b == '['):
			s.mode = modeCalls
			s.step(b)
		default:
			s.mode = modeContent
			s.step(b)
		}
	case modeContent:
		s.stepContent(b)
	case modeCalls:
		s.stepCalls(b)
	case modeObject:
		s.stepObject(b)
	case modeName:
		s.stepName(b)
	}
}

// argsMarker ends a call's name in the mistral-args syntax.
const argsMarker = "[ARGS]"

// stepName reads NAME[ARGS] after the opener (mistral-args); the
// arguments then read as an object's "arguments" value.
func (s *Stream) stepName(b byte) {
	s.pending = append(s.pending, b)
	s.raw = append(s.raw, b)
	name, ok := strings.CutSuffix(string(s.raw), argsMarker)
	switch {
	case ok && name != "":
		s.mode, s.obj, s.key = modeObject, objVal0, "arguments"
		s.name, s.haveName, s.open, s.haveArgs, s.argsStr = name, true, false, false, false
		s.args = s.args[:0]
	case len(s.raw) > 64+len(argsMarker) || !(isNameByte(b) || strings.HasPrefix(argsMarker, lastPart(s.raw))):
		s.notCallsHeld()
	}
}

// isNameByte reports whether b may be in a function's name.
func isNameByte(b byte) bool {
	return b == '_' || b == '-' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// lastPart is the tail of raw from its last '[' (the [ARGS] marker being
// read), or "" when there is none.
func lastPart(raw []byte) string {
	if i := bytes.LastIndexByte(raw, '['); i >= 0 {
		return string(raw[i:])
	}
	return ""
}

// stepContent emits content, holding back what could begin the opener.
func (s *Stream) stepContent(b byte) {
	if s.opener == "" {
		s.emitContent(b)
		return
	}
	if len(s.lit) > 0 || b == s.opener[0] {
		s.lit = append(s.lit, b)
		switch {
		case len(s.lit) == len(s.opener) && string(s.lit) == s.opener:
			// Calls begin: held back with the whitespace before them,
			// content again unless a call follows.
			s.pending = append(s.pending, s.lit...)
			s.lit = s.lit[:0]
			s.mode = modeCalls
			if s.named {
				s.mode, s.raw = modeName, s.raw[:0]
			}
			return
		case len(s.lit) <= len(s.opener) && s.opener[:len(s.lit)] == string(s.lit):
			return
		}
		// Not the opener. Its first byte occurs nowhere else in it, so
		// the held bytes are content and b may begin it again.
		s.lit = s.lit[:len(s.lit)-1]
		s.flushContent()
		s.stepContent(b)
		return
	}
	s.emitContent(b)
}

func (s *Stream) emitContent(b byte) {
	s.flushContent()
	s.content = append(s.content, b)
}

// flushContent releases the held-back text as content.
func (s *Stream) flushContent() {
	s.content = append(append(s.content, s.pending...), s.lit...)
	s.pending, s.lit = s.pending[:0], s.lit[:0]
}

// hold keeps b back until it is known to be call syntax or content; after
// a call was made, syntax between calls is simply dropped.
func (s *Stream) hold(b byte) {
	if s.calls == 0 {
		s.pending = append(s.pending, b)
	}
}

// notCalls turns the held-back text into content and reads b as content.
func (s *Stream) notCalls(b byte) {
	s.mode = modeContent
	s.flushContent()
	s.stepContent(b)
}

// stepCalls reads between calls: separators, then a call object.
func (s *Stream) stepCalls(b byte) {
	if len(s.lit) > 0 || (s.hermes && b == '<') {
		s.lit = append(s.lit, b)
		for _, tag := range [...]string{"<tool_call>", "</tool_call>"} {
			if len(s.lit) <= len(tag) && tag[:len(s.lit)] == string(s.lit) {
				if len(s.lit) == len(tag) {
					for _, c := range s.lit {
						s.hold(c)
					}
					s.lit = s.lit[:0]
				}
				return
			}
		}
		s.lit = s.lit[:len(s.lit)-1]
		for _, c := range s.lit {
			s.hold(c)
		}
		s.lit = s.lit[:0]
		s.notCalls(b)
		return
	}
	switch {
	case isSpace(b), b == '[', b == ']', b == ',', b == ';':
		s.hold(b)
	case b == '{':
		s.mode = modeObject
		s.obj, s.key, s.name, s.haveName, s.open, s.haveArgs, s.argsStr = objKey0, "", "", false, false, false, false
		s.args = s.args[:0]
		s.pending = append(s.pending, b)
	default:
		s.notCalls(b)
	}
}

// stepObject reads a call object {"name": ..., "arguments": ...}.
func (s *Stream) stepObject(b byte) {
	if !s.open {
		s.pending = append(s.pending, b)
	}
	s.objectByte(b)
}

func (s *Stream) objectByte(b byte) {
	switch s.obj {
	case objKey0:
		switch {
		case isSpace(b):
		case b == '"':
			s.obj, s.raw, s.val = objKey, append(s.raw[:0], '"'), valueScan{}
		case b == '}':
			s.endObject()
		default:
			s.objectFailed()
		}
	case objKey:
		s.raw = append(s.raw, b)
		if s.val.stringEnds(b) {
			s.key = ""
			if json.Unmarshal(s.raw, &s.key) != nil {
				s.objectFailed()
				return
			}
			s.obj = objColon
		}
	case objColon:
		switch {
		case isSpace(b):
		case b == ':':
			s.obj = objVal0
		default:
			s.objectFailed()
		}
	case objVal0:
		if isSpace(b) {
			return
		}
		s.startValue(b)
	case objVal:
		s.stepValue(b)
	case objAfter:
		switch {
		case isSpace(b):
		case b == ',':
			s.obj = objKey0
		case b == '}':
			s.endObject()
		default:
			s.objectFailed()
		}
	}
}

// startValue begins the value of s.key with its first byte b.
func (s *Stream) startValue(b byte) {
	s.obj = objVal
	s.val = valueScan{}
	s.val.start(b)
	s.raw = append(s.raw[:0], b)
	switch {
	case s.key == "name" && !s.haveName:
		s.valKind = valName
		if b != '"' {
			s.objectFailed()
		}
	case (s.key == "arguments" || s.key == "parameters") && !s.haveArgs && !s.open:
		s.valKind = valArgs
		s.argsStr = b == '"'
		if (b == '{' || b == '[') && s.haveName && s.offers(s.name) {
			// The call is known: open it and stream its arguments.
			s.openCall()
			s.args = append(s.args[:0], b)
			s.addArgs([]byte{b})
		}
	default:
		s.valKind = valOther
	}
}

// stepValue reads one byte of the current value.
func (s *Stream) stepValue(b byte) {
	inString := s.val.inStr
	consumed, done := s.val.feed(b)
	if consumed {
		if s.valKind == valArgs && s.open {
			if inString || !isSpace(b) {
				s.addArgs([]byte{b})
			}
		} else {
			s.raw = append(s.raw, b)
		}
	}
	if !done {
		return
	}
	s.obj = objAfter
	if s.named && s.valKind == valArgs {
		// mistral-args: the call ends with its arguments.
		s.haveArgs = true
		if !s.open {
			s.args = append(s.args[:0], s.raw...)
		}
		s.endObject()
		if !consumed {
			s.step(b)
		}
		return
	}
	switch s.valKind {
	case valName:
		if json.Unmarshal(s.raw, &s.name) != nil {
			s.objectFailed()
			return
		}
		s.haveName = true
	case valArgs:
		s.haveArgs = true
		if !s.open {
			s.args = append(s.args[:0], s.raw...)
		}
	}
	if !consumed && s.mode == modeObject {
		s.objectByte(b) // the byte that ended a number or literal
	}
}

// openCall emits the first piece of a new call.
func (s *Stream) openCall() {
	s.open = true
	s.pending = s.pending[:0]
	s.deltas = append(s.deltas, bus.ToolCallDelta{Index: s.calls, ID: fmt.Sprintf("call_%s_%d", s.id, s.calls), Name: s.name})
	s.spans = append(s.spans, [2]int{len(s.argBuf), len(s.argBuf)})
	s.calls++
}

// addArgs emits a fragment of the open call's arguments. Only the last
// delta grows, so its span ends where argBuf does.
func (s *Stream) addArgs(frag []byte) {
	s.argBuf = append(s.argBuf, frag...)
	if n := len(s.deltas); n > 0 && s.deltas[n-1].Index == s.calls-1 {
		s.spans[n-1][1] = len(s.argBuf)
		return
	}
	s.deltas = append(s.deltas, bus.ToolCallDelta{Index: s.calls - 1})
	s.spans = append(s.spans, [2]int{len(s.argBuf) - len(frag), len(s.argBuf)})
}

// endObject ends a call object: an open call is complete; one whose
// arguments came whole (before its name, or as a string) opens now.
func (s *Stream) endObject() {
	s.mode = modeCalls
	if s.named {
		s.mode = modeContent // the next call opens with the opener again
	}
	if s.open {
		s.pending = s.pending[:0]
		return
	}
	if !s.haveName || !s.haveArgs || !s.offers(s.name) {
		s.notCallsHeld()
		return
	}
	args := s.args
	if s.argsStr {
		var inner string
		if json.Unmarshal(args, &inner) != nil {
			s.notCallsHeld()
			return
		}
		args = []byte(inner)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, args) != nil {
		s.notCallsHeld()
		return
	}
	s.openCall()
	s.addArgs(compact.Bytes())
}

// objectFailed ends a call object that is not a call: an open call stays
// made (its pieces are out) and what follows is content; otherwise the
// held-back text is content.
func (s *Stream) objectFailed() {
	s.mode = modeContent
	if s.open {
		s.pending = s.pending[:0]
		return
	}
	s.flushContent()
}

// notCallsHeld makes the held-back text content after a complete object
// that is not a call.
func (s *Stream) notCallsHeld() {
	s.mode = modeContent
	s.flushContent()
}

// valueScan finds the end of a JSON value read byte by byte, without
// checking it.
type valueScan struct {
	depth  int
	inStr  bool
	esc    bool
	scalar bool
}

func (v *valueScan) start(b byte) {
	switch b {
	case '{', '[':
		v.depth = 1
	case '"':
		v.inStr = true
	default:
		v.scalar = true
	}
}

// stringEnds reads b inside a string and reports whether it closed it.
func (v *valueScan) stringEnds(b byte) bool {
	switch {
	case v.esc:
		v.esc = false
	case b == '\\':
		v.esc = true
	case b == '"':
		return true
	}
	return false
}

// feed reads b: consumed is false when b is not part of the value (it ended
// a number or literal); done when the value is complete.
func (v *valueScan) feed(b byte) (consumed, done bool) {
	if v.scalar {
		if isSpace(b) || b == ',' || b == '}' || b == ']' {
			return false, true
		}
		return true, false
	}
	if v.inStr {
		if v.stringEnds(b) {
			v.inStr = false
			return true, v.depth == 0
		}
		return true, false
	}
	switch b {
	case '"':
		v.inStr = true
	case '{', '[':
		v.depth++
	case '}', ']':
		v.depth--
		return true, v.depth == 0
	}
	return true, false
}
