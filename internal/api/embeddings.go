package api

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"unicode/utf8"

	"courier/internal/bus"
)

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Model string `json:"model"`
	// Input is a string, an array of strings, an array of token ids, or an
	// array of arrays of token ids: 1..bus.MaxEmbedInputs inputs.
	Input json.RawMessage `json:"input"`
	// EncodingFormat is "float" (the default) or "base64": the vector's
	// float32 values, little-endian, in standard base64.
	EncodingFormat *string `json:"encoding_format"`
	// Dimensions must be the model's vector length when given: Courier
	// cannot shorten vectors.
	Dimensions *int    `json:"dimensions"`
	User       *string `json:"user"`
}

// Embeddings is the response of POST /v1/embeddings: one entry per input,
// in input order.
type Embeddings struct {
	Object string          `json:"object"` // "list"
	Data   []EmbeddingData `json:"data"`
	Model  string          `json:"model"`
	Usage  EmbeddingUsage  `json:"usage"`
}

// EmbeddingData is one input's vector: a JSON array of numbers, or a
// base64 string of little-endian float32 values.
type EmbeddingData struct {
	Object    string `json:"object"` // "embedding"
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// EmbeddingUsage counts the input tokens embedded.
type EmbeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// embeddings serves POST /v1/embeddings.
func (s *server) embeddings(w http.ResponseWriter, r *http.Request) {
	var body EmbeddingRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	req, b64, e := embeddingToBus(s.cfg, &body)
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, req, &embedFormat{inputs: len(req.Inputs) + len(req.TokenInputs), base64: b64})
}

// embeddingToBus validates an embedding request and builds its
// bus.Request; it reports whether the vectors go out as base64, or the
// first problem, naming its field.
func embeddingToBus(cfg Config, c *EmbeddingRequest) (*bus.Request, bool, *Error) {
	if c.Model == "" {
		return nil, false, errorf(CodeMissingParameter, "model", "model is required")
	}
	req := &bus.Request{V: bus.Version, Kind: bus.KindEmbedding, Model: c.Model}
	if c.User != nil {
		req.User = *c.User
	}
	b64 := false
	if f := c.EncodingFormat; f != nil {
		switch *f {
		case "float":
		case "base64":
			b64 = true
		default:
			return nil, false, errorf(CodeInvalidValue, "encoding_format", "encoding_format must be \"float\" or \"base64\", got %q", *f)
		}
	}
	if d := c.Dimensions; d != nil {
		if *d <= 0 {
			return nil, false, errorf(CodeInvalidValue, "dimensions", "dimensions must be a positive integer, got %d", *d)
		}
		req.Dimensions = *d // the worker knows the model's and refuses any other
	}
	texts, tokens, e := parseEmbedInput(c.Input)
	if e != nil {
		return nil, false, e
	}
	for i, t := range texts {
		if n := utf8.RuneCountInString(t); n > cfg.MaxPromptChars {
			p := inputParam(c.Input, i)
			return nil, false, errorf(CodePromptTooLong, p, "%s has %d characters; the limit is %d", p, n, cfg.MaxPromptChars)
		}
	}
	req.Inputs, req.TokenInputs = texts, tokens
	return req, b64, nil
}

// parseEmbedInput accepts OpenAI's four shapes of input: a string, an
// array of strings, an array of token ids, an array of arrays of token
// ids. It returns the texts or the token lists.
func parseEmbedInput(raw json.RawMessage) ([]string, [][]int32, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, errorf(CodeMissingParameter, "input", "input is required: a string, an array of strings, an array of token ids or an array of arrays of token ids")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil, errorf(CodeInvalidValue, "input", "input must not be an empty string")
		}
		return []string{one}, nil, nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) != nil {
		return nil, nil, errorf(CodeInvalidType, "input", "input must be a string or an array")
	}
	if len(arr) == 0 {
		return nil, nil, errorf(CodeInvalidValue, "input", "input must not be an empty array")
	}
	switch first := bytes.TrimSpace(arr[0]); {
	case len(first) > 0 && first[0] == '"':
		if len(arr) > bus.MaxEmbedInputs {
			return nil, nil, tooManyInputs(len(arr))
		}
		texts := make([]string, len(arr))
		for i, a := range arr {
			p := fmt.Sprintf("input[%d]", i)
			if json.Unmarshal(a, &texts[i]) != nil {
				return nil, nil, errorf(CodeInvalidType, p, "%s must be a string like input[0]", p)
			}
			if texts[i] == "" {
				return nil, nil, errorf(CodeInvalidValue, p, "%s must not be an empty string", p)
			}
		}
		return texts, nil, nil
	case len(first) > 0 && first[0] == '[':
		if len(arr) > bus.MaxEmbedInputs {
			return nil, nil, tooManyInputs(len(arr))
		}
		lists := make([][]int32, len(arr))
		for i, a := range arr {
			ids, e := parseTokenIDs(a, fmt.Sprintf("input[%d]", i))
			if e != nil {
				return nil, nil, e
			}
			lists[i] = ids
		}
		return nil, lists, nil
	default:
		ids, e := parseTokenIDs(raw, "input")
		if e != nil {
			return nil, nil, e
		}
		return nil, [][]int32{ids}, nil
	}
}

func tooManyInputs(n int) *Error {
	return errorf(CodeInvalidValue, "input", "input must hold 1 to %d inputs, got %d; send more in further requests or as a batch", bus.MaxEmbedInputs, n)
}

// parseTokenIDs reads a non-empty array of token ids (integers from 0 to
// 2^31-1; the worker checks them against the vocabulary).
func parseTokenIDs(raw json.RawMessage, param string) ([]int32, *Error) {
	var nums []float64
	if json.Unmarshal(raw, &nums) != nil {
		return nil, errorf(CodeInvalidType, param, "%s must be an array of token ids (integers)", param)
	}
	if len(nums) == 0 {
		return nil, errorf(CodeInvalidValue, param, "%s must not be an empty array", param)
	}
	ids := make([]int32, len(nums))
	for i, v := range nums {
		if v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
			return nil, errorf(CodeInvalidValue, param, "%s[%d] = %v is not a token id", param, i, v)
		}
		ids[i] = int32(v)
	}
	return ids, nil
}

// embedFormat renders embedding responses from the worker's Embedding
// chunks (one per input). It never streams.
type embedFormat struct {
	header
	inputs int
	base64 bool

	data   []EmbeddingData
	tokens int
}

var _ format = (*embedFormat)(nil)

func (f *embedFormat) isStream() bool             { return false }
func (f *embedFormat) events(*bus.Chunk) [][]byte { return nil }
func (f *embedFormat) usageEvent(Usage) []byte    { return nil }

func (f *embedFormat) add(c *bus.Chunk) {
	em := c.Embedding
	if em == nil || em.Index < 0 || em.Index >= f.inputs {
		return
	}
	if f.data == nil {
		f.data = make([]EmbeddingData, f.inputs)
	}
	d := EmbeddingData{Object: "embedding", Index: em.Index, Embedding: em.Vector}
	if f.base64 {
		d.Embedding = encodeFloats(em.Vector)
	}
	f.data[em.Index] = d
	f.tokens += em.Tokens
}

// encodeFloats is OpenAI's base64 encoding of a vector: its float32
// values, little-endian, in standard base64.
func encodeFloats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (f *embedFormat) body(string, Usage) any {
	for i := range f.data {
		// Every Seq comes once, in order, so every input has its chunk;
		// this only keeps the body well-formed if a worker broke that.
		if f.data[i].Object == "" {
			f.data[i] = EmbeddingData{Object: "embedding", Index: i, Embedding: []float32{}}
		}
	}
	if f.data == nil {
		f.data = []EmbeddingData{}
	}
	return Embeddings{
		Object: "list", Model: f.model, Data: f.data,
		Usage: EmbeddingUsage{PromptTokens: f.tokens, TotalTokens: f.tokens},
	}
}
