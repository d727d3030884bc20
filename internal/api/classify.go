package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"unicode/utf8"

	"courier/internal/bus"
)

// maxLabelChars caps one classification label, in Unicode code points.
const maxLabelChars = 256

// ClassificationRequest is the body of POST /v1/classifications.
type ClassificationRequest struct {
	Model string `json:"model"`
	// Input is a string or an array of 1..bus.MaxClassifyInputs strings.
	Input json.RawMessage `json:"input"`
	// Labels are 2..bus.MaxClassifyLabels distinct, non-empty strings.
	Labels []string `json:"labels"`
	// Template is the prompt, with "{input}" where the text goes and
	// optionally "{labels}"; absent takes the worker's default.
	Template *string `json:"template"`
	User     *string `json:"user"`
}

// Classifications is the response of POST /v1/classifications: one entry
// per input, in input order.
type Classifications struct {
	Object string              `json:"object"` // "list"
	Model  string              `json:"model"`
	Data   []Classification    `json:"data"`
	Usage  ClassificationUsage `json:"usage"`
}

// Classification is one input's result: the most probable label and every
// label's probability and log-likelihood, in the request's label order.
type Classification struct {
	Object string       `json:"object"` // "classification"
	Index  int          `json:"index"`
	Label  string       `json:"label"`
	Scores []LabelScore `json:"scores"`
}

// LabelScore is one label's score for one input. Logprob is the model's
// total log-likelihood of the label's tokens after the prompt;
// Probability is the softmax of the labels' logprobs.
type LabelScore struct {
	Label       string  `json:"label"`
	Probability float64 `json:"probability"`
	Logprob     float64 `json:"logprob"`
}

// ClassificationUsage counts the tokens evaluated, in the shape of
// OpenAI's embeddings usage: nothing is generated, so every token (the
// prompts and every label's continuation) is a prompt token.
type ClassificationUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// classifications serves POST /v1/classifications.
func (s *server) classifications(w http.ResponseWriter, r *http.Request) {
	var body ClassificationRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	req, e := classificationToBus(s.cfg, &body)
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, req, &classifyFormat{labels: req.Labels, inputs: len(req.Inputs)})
}

// classificationToBus validates a classification request and builds its
// bus.Request. It reports the first problem, naming its field.
func classificationToBus(cfg Config, c *ClassificationRequest) (*bus.Request, *Error) {
	if c.Model == "" {
		return nil, errorf(CodeMissingParameter, "model", "model is required")
	}
	req := &bus.Request{V: bus.Version, Kind: bus.KindClassification, Model: c.Model}
	if c.User != nil {
		req.User = *c.User
	}
	labels, e := checkLabels(c.Labels)
	if e != nil {
		return nil, e
	}
	req.Labels = labels
	if c.Template != nil {
		if !strings.Contains(*c.Template, "{input}") {
			return nil, errorf(CodeInvalidValue, "template", "template must contain {input}, where the text to classify goes")
		}
		req.Template = *c.Template
	}
	inputs, e := parseInputs(c.Input)
	if e != nil {
		return nil, e
	}
	fixed := utf8.RuneCountInString(req.Template)
	for i, in := range inputs {
		if n := fixed + utf8.RuneCountInString(in); n > cfg.MaxPromptChars {
			p := inputParam(c.Input, i)
			return nil, errorf(CodePromptTooLong, p, "%s and the template have %d characters; the limit is %d", p, n, cfg.MaxPromptChars)
		}
	}
	req.Inputs = inputs
	return req, nil
}

// checkLabels requires 2..bus.MaxClassifyLabels distinct, non-blank labels.
func checkLabels(labels []string) ([]string, *Error) {
	if labels == nil {
		return nil, errorf(CodeMissingParameter, "labels", "labels is required: the classes to choose from, e.g. [\"positive\",\"negative\"]")
	}
	if n := len(labels); n < 2 || n > bus.MaxClassifyLabels {
		return nil, errorf(CodeInvalidValue, "labels", "labels must hold 2 to %d labels, got %d", bus.MaxClassifyLabels, n)
	}
	seen := make(map[string]int, len(labels))
	for i, l := range labels {
		p := fmt.Sprintf("labels[%d]", i)
		if strings.TrimSpace(l) == "" {
			return nil, errorf(CodeInvalidValue, p, "%s must not be empty", p)
		}
		if n := utf8.RuneCountInString(l); n > maxLabelChars {
			return nil, errorf(CodeInvalidValue, p, "%s has %d characters; the limit is %d", p, n, maxLabelChars)
		}
		if j, dup := seen[l]; dup {
			return nil, errorf(CodeInvalidValue, p, "%s %q repeats labels[%d]; labels must be distinct", p, l, j)
		}
		seen[l] = i
	}
	return labels, nil
}

// parseInputs accepts a non-empty string or an array of 1..MaxClassifyInputs
// non-empty strings.
func parseInputs(raw json.RawMessage) ([]string, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errorf(CodeMissingParameter, "input", "input is required: a string or an array of strings to classify")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, errorf(CodeInvalidValue, "input", "input must not be empty")
		}
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil {
		return nil, errorf(CodeInvalidType, "input", "input must be a string or an array of strings")
	}
	if n := len(many); n == 0 || n > bus.MaxClassifyInputs {
		return nil, errorf(CodeInvalidValue, "input", "input must hold 1 to %d strings, got %d; send more in further requests or as a batch", bus.MaxClassifyInputs, n)
	}
	for i, s := range many {
		if s == "" {
			return nil, errorf(CodeInvalidValue, fmt.Sprintf("input[%d]", i), "input[%d] must not be empty", i)
		}
	}
	return many, nil
}

// inputParam names input i as the client wrote it: "input" for a single
// string, "input[i]" in an array.
func inputParam(raw json.RawMessage, i int) string {
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		return fmt.Sprintf("input[%d]", i)
	}
	return "input"
}

// classifyFormat renders classification responses from the worker's
// Scores chunks (one per input). It never streams.
type classifyFormat struct {
	header
	labels []string
	inputs int

	data   []Classification
	tokens int
}

var _ format = (*classifyFormat)(nil)

func (f *classifyFormat) isStream() bool             { return false }
func (f *classifyFormat) events(*bus.Chunk) [][]byte { return nil }
func (f *classifyFormat) usageEvent(Usage) []byte    { return nil }

func (f *classifyFormat) add(c *bus.Chunk) {
	sc := c.Scores
	if sc == nil || sc.Index < 0 || sc.Index >= f.inputs || len(sc.Logprobs) != len(f.labels) {
		return
	}
	if f.data == nil {
		f.data = make([]Classification, f.inputs)
	}
	f.data[sc.Index] = classification(sc.Index, f.labels, sc.Logprobs)
	f.tokens += sc.Tokens
}

// classification turns one input's label logprobs into probabilities (a
// softmax over the labels) and picks the most probable label; ties go to
// the earlier label.
func classification(index int, labels []string, logprobs []float64) Classification {
	top := math.Inf(-1)
	best := 0
	for i, lp := range logprobs {
		if lp > top {
			top, best = lp, i
		}
	}
	var sum float64
	for _, lp := range logprobs {
		sum += math.Exp(lp - top)
	}
	c := Classification{Object: "classification", Index: index, Label: labels[best], Scores: make([]LabelScore, len(labels))}
	for i, lp := range logprobs {
		p := math.Exp(lp-top) / sum
		if math.IsNaN(p) || math.IsInf(top, 0) {
			p = 1 / float64(len(labels)) // every label impossible: no preference
		}
		c.Scores[i] = LabelScore{Label: labels[i], Probability: p, Logprob: finite(lp)}
	}
	return c
}

// finite keeps JSON encodable: -Inf (a label the model rules out) becomes
// the most negative float64.
func finite(v float64) float64 {
	switch {
	case math.IsInf(v, -1) || math.IsNaN(v):
		return -math.MaxFloat64
	case math.IsInf(v, 1):
		return math.MaxFloat64
	}
	return v
}

func (f *classifyFormat) body(string, Usage) any {
	for i := range f.data {
		// The stream hands out every Seq once, in order, so every input
		// has its chunk; this only keeps the body well-formed if a worker
		// broke that promise.
		if f.data[i].Object == "" {
			f.data[i] = Classification{Object: "classification", Index: i, Scores: []LabelScore{}}
		}
	}
	if f.data == nil {
		f.data = []Classification{}
	}
	return Classifications{
		Object: "list", Model: f.model, Data: f.data,
		Usage: ClassificationUsage{PromptTokens: f.tokens, TotalTokens: f.tokens},
	}
}
