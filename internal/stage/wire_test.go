package stage

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
)

func sampleStep() *Message {
	return &Message{
		Kind: KindStep, DType: F32, Epoch: 1733480000000000000, Step: 42, Opens: true,
		Reply: "courier.stage.m.out.first", Route: []string{"courier.stage.m.step.s3"},
		StageStep: engine.StageStep{
			Context: 256, KVBlocks: 64, KVBlockSize: 16,
			Tokens: []int32{1, 7, 9}, Pos: []int32{0, 1, 5},
			Modes:  []model.RowMode{model.RowPrompt, model.RowPrompt, 0},
			Logits: []bool{false, true, true}, Seq: []int32{0, 0, 1},
			Tables: [][]int32{{3}, {5}}, Copies: []int32{2, 5},
			Hidden: []float32{1, -2, 0.5, 3, 4, 5},
		},
		Width: 2,
	}
}

// TestWireRoundTrip encodes and decodes each kind of message.
func TestWireRoundTrip(t *testing.T) {
	step := sampleStep()
	var got Message
	if err := Decode(AppendEncode(nil, step), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Embd) == 0 {
		got.Embd = nil // no row wants an embedding: none sent
	}
	if !reflect.DeepEqual(got.StageStep, step.StageStep) || got.Epoch != step.Epoch || got.Step != step.Step || !got.Opens ||
		got.Reply != step.Reply || !reflect.DeepEqual(got.Route, step.Route) || got.Width != 2 {
		t.Errorf("step round trip:\n got %+v\nwant %+v", got, step)
	}
	half := sampleStep()
	half.DType = F16
	half.Hidden = []float32{1, -2, 0.5, 3, 4, 1.0 / 3}
	if err := Decode(AppendEncode(nil, half), &got); err != nil {
		t.Fatal(err)
	}
	if got.Hidden[5] == float32(1.0/3) || math.Abs(float64(got.Hidden[5]-1.0/3)) > 1e-3 || got.Hidden[0] != 1 {
		t.Errorf("F16 rows %v", got.Hidden)
	}
	res := &Message{Kind: KindResult, Epoch: 9, Step: 3, Width: 3, Rows: []float32{1, 2, 3, 4, 5, 6}, First: 1, Total: 4}
	if err := Decode(AppendEncode(nil, res), &got); err != nil || !reflect.DeepEqual(got.Rows, res.Rows) || got.Kind != KindResult ||
		got.First != 1 || got.Total != 4 {
		t.Errorf("result round trip: %+v, %v", got.Rows, err)
	}
	emb := &Message{Kind: KindEmbd, Epoch: 9, Step: 3, Width: 2, Rows: []float32{1, 2}, First: 0, Total: 1}
	if err := Decode(AppendEncode(nil, emb), &got); err != nil || !reflect.DeepEqual(got.Rows, emb.Rows) || got.Kind != KindEmbd {
		t.Errorf("embedding round trip: %+v, %v", got.Rows, err)
	}
	withEmbd := sampleStep()
	withEmbd.Embd = []bool{false, false, true}
	withEmbd.Logits = []bool{false, true, false}
	if err := Decode(AppendEncode(nil, withEmbd), &got); err != nil || !reflect.DeepEqual(got.Embd, withEmbd.Embd) {
		t.Errorf("step with embedding rows: %v, %v", got.Embd, err)
	}
	em := &Message{Kind: KindError, Epoch: 9, Step: 3, Err: "stage s2: boom"}
	if err := Decode(AppendEncode(nil, em), &got); err != nil || got.Err != em.Err || got.Kind != KindError {
		t.Errorf("error round trip: %q, %v", got.Err, err)
	}
}

// TestWireRefusesMalformed checks truncation and lies in the header.
func TestWireRefusesMalformed(t *testing.T) {
	good := AppendEncode(nil, sampleStep())
	var m Message
	for n := 0; n < len(good); n++ {
		if err := Decode(good[:n], &m); !errors.Is(err, ErrMessage) {
			t.Fatalf("truncated to %d bytes: %v, want ErrMessage", n, err)
		}
	}
	bad := append([]byte(nil), good...)
	bad[4] = 1 // version 1 (before the samples section)
	if err := Decode(bad, &m); !errors.Is(err, ErrMessage) {
		t.Errorf("version 1: %v", err)
	}
	bad = append([]byte(nil), good...)
	bad[24+12] = 0xff // rows: far more than the bytes hold
	bad[24+13] = 0xff
	if err := Decode(bad, &m); !errors.Is(err, ErrMessage) {
		t.Errorf("rows out of bounds: %v", err)
	}
	if err := Decode(append(good, 0), &m); !errors.Is(err, ErrMessage) {
		t.Errorf("trailing byte: %v", err)
	}
	part := AppendEncode(nil, &Message{Kind: KindResult, Width: 1, Rows: []float32{1, 2}, First: 1, Total: 2})
	if err := Decode(part, &m); !errors.Is(err, ErrMessage) {
		t.Errorf("a result part past its total: %v", err)
	}
}

// FuzzDecode feeds Decode arbitrary bytes (seeds in testdata/fuzz): it
// must refuse or accept without panicking, and what it accepts must
// encode back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(AppendEncode(nil, sampleStep()))
	f.Add(AppendEncode(nil, &Message{Kind: KindResult, Epoch: 1, Step: 1, Width: 2, Rows: []float32{1, 2}, Total: 1}))
	f.Add(AppendEncode(nil, &Message{Kind: KindError, Err: "x"}))
	f.Add(AppendEncode(nil, sampledStep()))
	f.Add(AppendEncode(nil, samplePicks()))
	f.Add(AppendEncode(nil, constrainedStep()))
	f.Add(AppendEncode(nil, preparedStep()))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := Decode(data, &m); err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error not ErrMessage: %v", err)
			}
			return
		}
		if m.Kind == KindStep {
			m.Hidden = m.Rows
		}
		var again Message
		if err := Decode(AppendEncode(nil, &m), &again); err != nil {
			t.Fatalf("re-encoded message refused: %v", err)
		}
	})
}

// TestFuzzCorpusCommitted keeps the seed corpus in the repository.
func TestFuzzCorpusCommitted(t *testing.T) {
	ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecode"))
	if err != nil || len(ents) < 3 {
		t.Fatalf("seed corpus testdata/fuzz/FuzzDecode: %d files, %v", len(ents), err)
	}
}

// BenchmarkWireResult encodes and decodes a 16-row result of a 32000-token
// vocabulary (what a 16-stream decode step sends back).
func BenchmarkWireResult(b *testing.B) {
	rows := make([]float32, 16*32000)
	for i := range rows {
		rows[i] = float32(i) * 0.001
	}
	m := &Message{Kind: KindResult, Epoch: 1, Step: 1, Width: 32000, Rows: rows, Total: 16}
	var buf []byte
	var got Message
	b.SetBytes(int64(4 * len(rows)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEncode(buf[:0], m)
		if err := Decode(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// sampledStep is sampleStep with its two logits rows sampled at the last
// stage, one greedy, one with every parameter.
func sampledStep() *Message {
	m := sampleStep()
	m.Samples = []engine.RowSample{
		{Row: 1},
		{Row: 2, Params: sampler.Params{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1, FrequencyPenalty: 0.5,
			PresencePenalty: -0.5, LogitBias: []sampler.Bias{{ID: 3, Value: -100}, {ID: 7, Value: 2.5}}},
			Draw: sampler.Draw{U: 0.625, Penalties: []sampler.Penalty{{ID: 1, Gen: 0}, {ID: 9, Gen: 2}}}, Logprobs: true, Top: 5,
			Emit: true, Key: 3, Open: &engine.StreamOpen{
				StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.cmpl-1", ID: "cmpl-1", Worker: "first", Attempt: 2, Seq: 7, Frames: 3, Choice: 2},
				Stop:      []string{"\n\n", "END"}, MaxTokens: 64, PromptTokens: 12, Resume: []int32{5, 6, 7}, Logprobs: true, TopLogprobs: 5}},
	}
	return m
}

// constrainedStep is sampledStep whose emitted row's stream is
// constrained by a forced tool call's grammar and read as a tool-mode
// answer (version 6), and whose greedy row's by a JSON Schema.
func constrainedStep() *Message {
	m := sampledStep()
	o := m.Samples[1].Open
	o.Grammar = &grammar.Source{Format: "hermes", Parallel: true, Tools: []grammar.Tool{
		{Name: "get_weather", Parameters: []byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)},
		{Name: "now"}}}
	o.Tools = &engine.ToolsOut{Format: "hermes", Names: []string{"get_weather", "now"}, CallID: "chatcmpl-1-2"}
	o.Skip = " \n"
	m.Samples[0] = engine.RowSample{Row: 1, Emit: true, Key: 4, Open: &engine.StreamOpen{
		StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.cmpl-2", ID: "cmpl-2", Worker: "first", Frames: 4},
		MaxTokens: 32, PromptTokens: 3, IgnoreEOS: true, Resume: []int32{},
		Grammar: &grammar.Source{Spec: grammar.Spec{Type: "json_schema", Schema: []byte(`{"type":"object","properties":{"a":{"enum":["x","y"]}}}`),
			Choices: []string{"unused"}, Pattern: "p", Grammar: "g"}}}}
	return m
}

// preparedStep is constrainedStep asking the last stage to compile two
// grammars ahead (version 7).
func preparedStep() *Message {
	m := constrainedStep()
	m.Prepare = []*grammar.Source{m.Samples[0].Open.Grammar, {Spec: grammar.Spec{Type: "regex", Pattern: "[a-z]+"}}}
	return m
}

func samplePicks() *Message {
	return &Message{Kind: KindPicks, Epoch: 9, Step: 3, Picks: []engine.Pick{
		{Sampled: true, Token: 7, Logprob: -0.25, Top: []sampler.TokenLogprob{{ID: 7, Logprob: -0.25}, {ID: 1, Logprob: -2}}},
		{Sampled: true, Token: -1, NonFinite: true},
		{Sampled: true, Token: 9, Stopped: true},
		{Sampled: true, Token: -1, Ended: true},
	}}
}

// TestWireSamplesRoundTrip encodes and decodes a step with samples and a
// picks message.
func TestWireSamplesRoundTrip(t *testing.T) {
	var got Message
	for _, step := range []*Message{sampledStep(), constrainedStep(), preparedStep(), constrainedStep()} {
		enc := AppendEncode(nil, step)
		if err := Decode(enc, &got); err != nil {
			t.Fatal(err)
		}
		got.Samples[0].Draw.Penalties = nil // decoded empty
		if !reflect.DeepEqual(got.Samples, step.Samples) {
			t.Errorf("samples round trip:\n got %+v\nwant %+v", got.Samples, step.Samples)
		}
		if len(got.Prepare) != len(step.Prepare) || len(step.Prepare) > 0 && !reflect.DeepEqual(got.Prepare, step.Prepare) {
			t.Errorf("grammars to prepare round trip:\n got %+v\nwant %+v", got.Prepare, step.Prepare)
		}
		for n := 0; n < len(enc); n++ {
			if err := Decode(enc[:n], &got); !errors.Is(err, ErrMessage) {
				t.Fatalf("step truncated to %d bytes: %v, want ErrMessage", n, err)
			}
		}
	}
	picks := samplePicks()
	if err := Decode(AppendEncode(nil, picks), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Picks, picks.Picks) || got.Kind != KindPicks || got.Step != 3 {
		t.Errorf("picks round trip:\n got %+v\nwant %+v", got.Picks, picks.Picks)
	}
	enc := AppendEncode(nil, picks)
	for n := 0; n < len(enc); n++ {
		if err := Decode(enc[:n], &got); !errors.Is(err, ErrMessage) {
			t.Fatalf("picks truncated to %d bytes: %v, want ErrMessage", n, err)
		}
	}
}
