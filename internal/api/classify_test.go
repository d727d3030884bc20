package api

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"courier/internal/bus"
)

// classifyChunks answers two inputs over labels [a b c].
func classifyChunks() []bus.Chunk {
	return []bus.Chunk{
		{Scores: &bus.Scores{Index: 0, Logprobs: []float64{-1, -2, -3}, Tokens: 10}},
		{Scores: &bus.Scores{Index: 1, Logprobs: []float64{-5, -0.5, math.Inf(-1)}, Tokens: 12}},
		{FinishReason: "stop", Usage: &bus.Usage{PromptTokens: 22}},
	}
}

func TestClassificationBody(t *testing.T) {
	d, rec := scripted(classifyChunks()...)
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/classifications", `{"model":"tiny","input":["good","bad"],"labels":["a","b","c"],"template":"T: {input}\nL:","user":"u"}`)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	req := rec.last()
	if req.Kind != bus.KindClassification || !slices.Equal(req.Inputs, []string{"good", "bad"}) || !slices.Equal(req.Labels, []string{"a", "b", "c"}) ||
		req.Template != "T: {input}\nL:" || req.User != "u" || req.ID == "" || req.Deadline == 0 || req.MaxTokens != 0 {
		t.Fatalf("bus request %+v", req)
	}
	checkGolden(t, "classification.json", w.Body.Bytes())
	var got Classifications
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "list" || got.Model != "tiny" || len(got.Data) != 2 || got.Usage.PromptTokens != 22 || got.Usage.TotalTokens != 22 {
		t.Fatalf("%+v", got)
	}
	for i, want := range []string{"a", "b"} {
		c := got.Data[i]
		if c.Index != i || c.Label != want || c.Object != "classification" || len(c.Scores) != 3 {
			t.Fatalf("data[%d] = %+v", i, c)
		}
		sum := 0.0
		for _, s := range c.Scores {
			sum += s.Probability
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Fatalf("data[%d] probabilities sum to %v", i, sum)
		}
	}
	// softmax(-1,-2,-3)[0] = 1/(1+e^-1+e^-2)
	if p := got.Data[0].Scores[0].Probability; math.Abs(p-1/(1+math.Exp(-1)+math.Exp(-2))) > 1e-15 {
		t.Fatalf("p = %v", p)
	}
	if s := got.Data[1].Scores[2]; s.Probability != 0 || s.Logprob != -math.MaxFloat64 {
		t.Fatalf("impossible label scored %+v", s)
	}
}

func TestClassificationOneInput(t *testing.T) {
	d, rec := scripted(bus.Chunk{Scores: &bus.Scores{Index: 0, Logprobs: []float64{-2, -2}, Tokens: 3}}, bus.Chunk{FinishReason: "stop"})
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/classifications", `{"model":"tiny","input":"hello","labels":["x","y"]}`)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got Classifications
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if req := rec.last(); req.Template != "" || len(req.Inputs) != 1 {
		t.Fatalf("bus request %+v", req)
	}
	// A tie goes to the first label; both are 0.5.
	if len(got.Data) != 1 || got.Data[0].Label != "x" || got.Data[0].Scores[1].Probability != 0.5 {
		t.Fatalf("%+v", got)
	}
}

func TestClassificationErrors(t *testing.T) {
	many := `["` + strings.Repeat(`x","`, bus.MaxClassifyInputs) + `x"]`
	labels65 := `["` + strings.Repeat(`l","`, 64) + `m"]`
	for _, tc := range []struct {
		body   string
		status int
		code   Code
		param  string
	}{
		{`{"input":"x","labels":["a","b"]}`, 400, CodeMissingParameter, "model"},
		{`{"model":"tiny","input":"x"}`, 400, CodeMissingParameter, "labels"},
		{`{"model":"tiny","input":"x","labels":["a"]}`, 400, CodeInvalidValue, "labels"},
		{`{"model":"tiny","input":"x","labels":` + labels65 + `}`, 400, CodeInvalidValue, "labels"},
		{`{"model":"tiny","input":"x","labels":["a","b","a"]}`, 400, CodeInvalidValue, "labels[2]"},
		{`{"model":"tiny","input":"x","labels":["a"," "]}`, 400, CodeInvalidValue, "labels[1]"},
		{`{"model":"tiny","input":"x","labels":"a,b"}`, 400, CodeInvalidType, "labels"},
		{`{"model":"tiny","labels":["a","b"]}`, 400, CodeMissingParameter, "input"},
		{`{"model":"tiny","input":"","labels":["a","b"]}`, 400, CodeInvalidValue, "input"},
		{`{"model":"tiny","input":[],"labels":["a","b"]}`, 400, CodeInvalidValue, "input"},
		{`{"model":"tiny","input":["a",""],"labels":["a","b"]}`, 400, CodeInvalidValue, "input[1]"},
		{`{"model":"tiny","input":[1],"labels":["a","b"]}`, 400, CodeInvalidType, "input"},
		{`{"model":"tiny","input":` + many + `,"labels":["a","b"]}`, 400, CodeInvalidValue, "input"},
		{`{"model":"tiny","input":"x","labels":["a","b"],"template":"no slot"}`, 400, CodeInvalidValue, "template"},
		{`{"model":"tiny","input":["ok","` + strings.Repeat("y", 101) + `"],"labels":["a","b"]}`, 413, CodePromptTooLong, "input[1]"},
		{`{"model":"nope","input":"x","labels":["a","b"]}`, 404, CodeModelNotFound, "model"},
	} {
		d, _ := scripted(classifyChunks()...)
		h := newTestServer(t, Config{MaxPromptChars: 100}, d)
		w := do(h, "POST", "/v1/classifications", tc.body)
		var e errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v: %s", tc.body, err, w.Body)
		}
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		if w.Code != tc.status || e.Error.Code != tc.code || param != tc.param {
			t.Errorf("%.80s: %d %s (%s), want %d %s (%s): %s", tc.body, w.Code, e.Error.Code, param, tc.status, tc.code, tc.param, e.Error.Message)
		}
	}
}

// TestClassificationWorkerError: a worker's error keeps its status.
func TestClassificationWorkerError(t *testing.T) {
	d, _ := scripted(bus.Chunk{Error: &bus.Error{Code: bus.CodePromptTooLong, Message: "input 0: too long"}})
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/classifications", `{"model":"tiny","input":"x","labels":["a","b"]}`)
	if w.Code != 413 || !strings.Contains(w.Body.String(), "input 0: too long") {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w = do(h, "GET", "/v1/classifications", ""); w.Code != 405 {
		t.Fatalf("GET: status %d", w.Code)
	}
}

// FuzzClassifications: garbage bodies never yield a 5xx or a panic, and
// every answer is an error JSON or a valid JSON body. The scripted worker
// answers two inputs over two labels whatever was asked, which the format
// must survive too (results for inputs that were not sent are dropped).
func FuzzClassifications(f *testing.F) {
	for _, s := range []string{
		`{"model":"tiny","input":"hi","labels":["a","b"]}`,
		`{"model":"tiny","input":["a","b","c"],"labels":["a","b"],"template":"{input}{labels}"}`,
		`{"model":"tiny","input":[null],"labels":[null,"a"]}`,
		`{"model":"tiny","input":{"a":1},"labels":["",""]}`,
		`{"model":"tiny","input":"x","labels":["a","b"],"template":null}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	d, _ := scripted(
		bus.Chunk{Scores: &bus.Scores{Index: 1, Logprobs: []float64{-1, -2}, Tokens: 4}},
		bus.Chunk{Scores: &bus.Scores{Index: 0, Logprobs: []float64{math.NaN(), -2}, Tokens: 4}},
		bus.Chunk{FinishReason: "stop"})
	h := newTestServer(f, Config{MaxBodyBytes: 1 << 16, MaxPromptChars: 1 << 12}, d)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := do(h, "POST", "/v1/classifications", string(body))
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("status %d: invalid JSON %q", w.Code, w.Body)
		}
	})
}

// TestClassificationAsBatchLine: a batch line naming /v1/classifications
// runs through the same handler and answers the synchronous body.
func TestClassificationAsBatchLine(t *testing.T) {
	d, rec := scripted(classifyChunks()...)
	s := newTestServer(t, Config{}, d)
	if !s.Executable("/v1/classifications") {
		t.Fatal("/v1/classifications is not executable as a batch line")
	}
	status, id, body := s.Execute(context.Background(), "/v1/classifications", []byte(`{"model":"tiny","input":["good","bad"],"labels":["a","b","c"]}`))
	if status != 200 || id != "test0001" || rec.last().Kind != bus.KindClassification {
		t.Fatalf("status %d id %q: %s", status, id, body)
	}
	var got Classifications
	if err := json.Unmarshal(body, &got); err != nil || len(got.Data) != 2 || got.Data[1].Label != "b" {
		t.Fatalf("%s: %v", body, err)
	}
}
