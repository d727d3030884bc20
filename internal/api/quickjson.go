package api

import (
	"encoding/json"

	"courier/internal/jsonread"
)

// quickBody reads the body of a completion or a chat request by hand when
// it has only the fields most requests send, leaving v exactly as
// json.Unmarshal would (FuzzQuickBody); it reports false, with v reset,
// for anything else — another key, a key repeated or spelled in another
// case, null, another value shape, bad JSON — which decodeJSON then hands
// to encoding/json as before. It is the hot path's body decode (about a
// quarter of encoding/json's time).
func quickBody(body []byte, v any) bool {
	d := bodyReader{jsonread.Reader{B: body}}
	switch v := v.(type) {
	case *CompletionRequest:
		if d.completion(v) && d.End() {
			return true
		}
		*v = CompletionRequest{}
	case *ChatRequest:
		if d.chat(v) && d.End() {
			return true
		}
		*v = ChatRequest{}
	}
	return false
}

type bodyReader struct{ jsonread.Reader }

func (d *bodyReader) completion(r *CompletionRequest) bool {
	var seen jsonread.Keys
	return d.Object(func(key []byte) bool {
		if ok, known := d.sampling(&r.samplingParams, &seen, key); known {
			return ok
		}
		switch string(key) {
		case "prompt":
			return seen.First(40) && d.raw(&r.Prompt)
		case "logprobs":
			return seen.First(41) && d.intPtr(&r.Logprobs)
		case "echo":
			return seen.First(42) && d.boolPtr(&r.Echo)
		case "best_of":
			return seen.First(43) && d.intPtr(&r.BestOf)
		case "suffix":
			return seen.First(44) && d.strPtr(&r.Suffix)
		}
		return false
	})
}

func (d *bodyReader) chat(r *ChatRequest) bool {
	var seen jsonread.Keys
	return d.Object(func(key []byte) bool {
		if ok, known := d.sampling(&r.samplingParams, &seen, key); known {
			return ok
		}
		switch string(key) {
		case "messages":
			return seen.First(40) && d.messages(&r.Messages)
		case "max_completion_tokens":
			return seen.First(41) && d.intPtr(&r.MaxCompletionTokens)
		case "logprobs":
			return seen.First(42) && d.boolPtr(&r.Logprobs)
		case "top_logprobs":
			return seen.First(43) && d.intPtr(&r.TopLogprobs)
		}
		return false
	})
}

// sampling reads a key of samplingParams: known reports whether key is one
// it reads (bits 0..39 of seen are its).
func (d *bodyReader) sampling(p *samplingParams, seen *jsonread.Keys, key []byte) (ok, known bool) {
	bit := uint(0)
	switch string(key) {
	case "model":
		bit, ok = 0, d.StrTo(&p.Model)
	case "max_tokens":
		bit, ok = 1, d.intPtr(&p.MaxTokens)
	case "temperature":
		bit, ok = 2, d.floatPtr(&p.Temperature)
	case "top_p":
		bit, ok = 3, d.floatPtr(&p.TopP)
	case "n":
		bit, ok = 4, d.intPtr(&p.N)
	case "stream":
		bit, ok = 5, d.boolPtr(&p.Stream)
	case "stream_options":
		bit, ok = 6, d.streamOptions(&p.StreamOptions)
	case "stop":
		bit, ok = 7, d.raw(&p.Stop)
	case "seed":
		bit = 8
		n, good := d.Integer(64)
		p.Seed, ok = &n, good
	case "frequency_penalty":
		bit, ok = 9, d.floatPtr(&p.FrequencyPenalty)
	case "presence_penalty":
		bit, ok = 10, d.floatPtr(&p.PresencePenalty)
	case "user":
		bit, ok = 11, d.strPtr(&p.User)
	case "top_k":
		bit, ok = 12, d.intPtr(&p.TopK)
	case "min_p":
		bit, ok = 13, d.floatPtr(&p.MinP)
	case "repetition_penalty":
		bit, ok = 14, d.floatPtr(&p.RepetitionPenalty)
	case "ignore_eos":
		bit, ok = 15, d.boolPtr(&p.IgnoreEOS)
	default:
		return false, false
	}
	return ok && seen.First(bit), true
}

func (d *bodyReader) intPtr(p **int) bool {
	n := new(int)
	*p = n
	return d.Int(n)
}

func (d *bodyReader) boolPtr(p **bool) bool {
	b := new(bool)
	*p = b
	return d.Bool(b)
}

func (d *bodyReader) strPtr(p **string) bool {
	s := new(string)
	*p = s
	return d.StrTo(s)
}

func (d *bodyReader) floatPtr(p **float64) bool {
	f, ok := d.Float64()
	*p = &f
	return ok
}

// raw reads a string or an array of strings as a json.RawMessage.
func (d *bodyReader) raw(p *json.RawMessage) bool {
	b, ok := d.Raw()
	*p = b
	return ok
}

func (d *bodyReader) streamOptions(p **StreamOptions) bool {
	o := new(StreamOptions)
	*p = o
	var seen jsonread.Keys
	return d.Object(func(key []byte) bool {
		return string(key) == "include_usage" && seen.First(0) && d.Bool(&o.IncludeUsage)
	})
}

// messages reads messages whose content is a string.
func (d *bodyReader) messages(p *[]ChatMessage) bool {
	*p = make([]ChatMessage, 0, 4)
	return d.Array(func() bool {
		*p = append(*p, ChatMessage{})
		m := &(*p)[len(*p)-1]
		var seen jsonread.Keys
		return d.Object(func(key []byte) bool {
			switch string(key) {
			case "role":
				return seen.First(0) && d.StrTo(&m.Role)
			case "content":
				if !seen.First(1) || d.I >= len(d.B) || d.B[d.I] != '"' {
					return false // parts, or null: encoding/json's
				}
				return d.raw(&m.Content)
			case "name":
				return seen.First(2) && d.StrTo(&m.Name)
			}
			return false
		})
	})
}
