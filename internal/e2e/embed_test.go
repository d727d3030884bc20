package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"courier/internal/engine"
	"courier/internal/jobs"
)

var embedTexts = []string{
	"Once upon a time",
	"The little girl was very happy and smiled",
	"Tom and his dog went to the park to play with a red ball.",
}

// directEmbeddings is what the engine's Embed says for each text,
// tokenized as the worker tokenizes embedding inputs: the reference the
// API's vectors must equal bit for bit. It also returns the tokens.
func directEmbeddings(t testing.TB, texts []string) ([][]float32, [][]int32) {
	t.Helper()
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vecs, toks := make([][]float32, len(texts)), make([][]int32, len(texts))
	for i, text := range texts {
		if toks[i], err = e.Tokenize(text, true, true); err != nil {
			t.Fatal(err)
		}
		if vecs[i], err = e.Embed(context.Background(), toks[i]); err != nil {
			t.Fatal(err)
		}
	}
	return vecs, toks
}

// same reports whether the client's float64 vector holds exactly the
// engine's float32 values (JSON carries each float32 in its shortest
// decimal form, which rounds back to the same float32).
func same(got []float64, want []float32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if float32(got[i]) != want[i] {
			return false
		}
	}
	return true
}

// TestEmbeddings runs /v1/embeddings through a real `serve` node, read by
// the official OpenAI client: every input shape, both encodings, usage,
// dimensions, and the vectors equal to the engine's Embed bit for bit.
func TestEmbeddings(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	want, toks := directEmbeddings(t, embedTexts)
	total := 0
	for _, tk := range toks {
		total += len(tk)
	}
	check := func(name string, resp *openai.CreateEmbeddingResponse, err error, idx []int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tokens := 0
		for _, i := range idx {
			tokens += len(toks[i])
		}
		if resp.Object != "list" || resp.Model != modelName || len(resp.Data) != len(idx) ||
			resp.Usage.PromptTokens != int64(tokens) || resp.Usage.TotalTokens != int64(tokens) {
			t.Fatalf("%s: response %s", name, resp.RawJSON())
		}
		for k, d := range resp.Data {
			if d.Index != int64(k) || d.Object != "embedding" || !same(d.Embedding, want[idx[k]]) {
				t.Fatalf("%s: data[%d] index %d, %d values %v…, want %v…", name, k, d.Index, len(d.Embedding), d.Embedding[:min(3, len(d.Embedding))], want[idx[k]][:3])
			}
		}
	}
	all := []int{0, 1, 2}

	resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(embedTexts[1])},
		User: openai.String("tester"),
	})
	check("string", resp, err, []int{1})
	var norm float64
	for _, v := range resp.Data[0].Embedding {
		norm += v * v
	}
	if math.Abs(norm-1) > 1e-6 || len(resp.Data[0].Embedding) != 64 {
		t.Fatalf("%d values of squared norm %v, want 64 of 1", len(resp.Data[0].Embedding), norm)
	}

	resp, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: embedTexts},
		Dimensions: openai.Int(64),
	})
	check("strings", resp, err, all)

	ints := make([][]int64, len(toks))
	for i, tk := range toks {
		for _, id := range tk {
			ints[i] = append(ints[i], int64(id))
		}
	}
	resp, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokens: ints[2]},
	})
	check("tokens", resp, err, []int{2})
	resp, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfTokenArrays: ints},
	})
	check("token arrays", resp, err, all)

	resp, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: embedTexts},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
	})
	check("base64", resp, err, all)
	if raw := resp.Data[0].JSON.Embedding.Raw(); len(raw) == 0 || raw[0] != '"' {
		t.Fatalf("base64 asked, embedding is %.40s", raw)
	}

	_, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
		Dimensions: openai.Int(32),
	})
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Param != "dimensions" || ae.Code != "invalid_value" {
		t.Fatalf("dimensions 32 of a 64-dimension model: %v", err)
	}

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	for _, tc := range []struct {
		body   string
		status int
		code   string
		param  string
	}{
		{`{"model":"nope","input":"x"}`, 404, "model_not_found", "model"},
		{`{"model":"%s"}`, 400, "missing_required_parameter", "input"},
		{`{"model":"%s","input":""}`, 400, "invalid_value", "input"},
		{`{"model":"%s","input":[]}`, 400, "invalid_value", "input"},
		{`{"model":"%s","input":["a",""]}`, 400, "invalid_value", "input[1]"},
		{`{"model":"%s","input":[[1,2],[-1]]}`, 400, "invalid_value", "input[1]"},
		{`{"model":"%s","input":[1,2.5]}`, 400, "invalid_value", "input"},
		{`{"model":"%s","input":[1,99999]}`, 400, "invalid_value", "input"},
		{`{"model":"%s","input":{"a":1}}`, 400, "invalid_type", "input"},
		{`{"model":"%s","input":"x","encoding_format":"int8"}`, 400, "invalid_value", "encoding_format"},
		{`{"model":"%s","input":"x","dimensions":0}`, 400, "invalid_value", "dimensions"},
	} {
		body := tc.body
		if bytes.Contains([]byte(body), []byte("%s")) {
			body = fmt.Sprintf(body, modelName)
		}
		r, err := hc.Post("http://"+n.Addr()+"/v1/embeddings", "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(r.Body)
		r.Body.Close()
		var eb struct {
			Error struct {
				Code  string  `json:"code"`
				Param *string `json:"param"`
			} `json:"error"`
		}
		json.Unmarshal(raw, &eb)
		if r.StatusCode != tc.status || eb.Error.Code != tc.code || eb.Error.Param == nil || *eb.Error.Param != tc.param {
			t.Errorf("%s: %d %s, want %d %s (param %s)", body, r.StatusCode, raw, tc.status, tc.code, tc.param)
		}
	}
}

// TestEmbeddingsBatch runs a batch file whose lines target /v1/embeddings:
// every line's body is the synchronous answer.
func TestEmbeddingsBatch(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	want, _ := directEmbeddings(t, embedTexts)
	var in bytes.Buffer
	for i, text := range embedTexts {
		fmt.Fprintf(&in, `{"custom_id":"e-%d","method":"POST","url":"/v1/embeddings","body":{"model":%q,"input":%q}}`+"\n", i, modelName, text)
	}
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(in.Bytes()), "input.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{
		InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Embeddings,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	if err != nil {
		t.Fatal(err)
	}
	for b.Status != openai.BatchStatusCompleted {
		if b.Status == openai.BatchStatusFailed || b.Status == openai.BatchStatusCancelled {
			t.Fatalf("batch %s: %+v", b.Status, b.Errors)
		}
		time.Sleep(50 * time.Millisecond)
		if b, err = c.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.Files.Content(ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := outputLines(t, data)
	by := map[string]jobs.OutputLine{}
	for _, l := range lines {
		by[l.CustomID] = l
	}
	if len(lines) != len(embedTexts) || len(by) != len(embedTexts) {
		t.Fatalf("%d output lines for %d inputs: %s", len(lines), len(embedTexts), data)
	}
	for i := range embedTexts {
		var got openai.CreateEmbeddingResponse
		l := by[fmt.Sprintf("e-%d", i)]
		if err := json.Unmarshal(l.Response.Body, &got); err != nil || len(got.Data) != 1 || !same(got.Data[0].Embedding, want[i]) {
			t.Fatalf("line %d: %s (%v)", i, l.Response.Body, err)
		}
	}
	if !slices.Equal([]int64{b.RequestCounts.Total, b.RequestCounts.Completed}, []int64{3, 3}) {
		t.Fatalf("request counts %+v", b.RequestCounts)
	}
}
