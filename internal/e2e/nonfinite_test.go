package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"courier/internal/config"
	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// nanModel writes a tiny model whose output weights are NaN, so every
// logits row it computes is NaN, as a corrupt file's would be.
func nanModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nan.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := synth.Write(f, synth.Config{Dim: 64, Layers: 1, Heads: 4, FFN: 128, Vocab: 300, Context: 256,
		Type: gguf.TypeF32, Seed: 7, NaN: []string{"output.weight"}}); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNonFiniteModelFailsFast: a model producing NaN logits answers 500
// naming the cause on its first attempt (its timeline shows one placement
// and no resume: no re-dispatch, no 502 after seconds), streaming or not;
// the failure is counted; a good model served by the same node keeps
// answering, and so does the NaN model's worker (it stays in rotation:
// the next request fails the same way).
func TestNonFiniteModelFailsFast(t *testing.T) {
	cfg := serveConfig(t)
	cfg.Models = append(cfg.Models, config.Model{Name: "nan", Path: nanModel(t)})
	n := startNode(t, cfg)
	c := client(t, n.Addr())
	ctx := testCtx(t)

	want := greedy(t, "Once upon a time", 16)
	for i := range 3 {
		t0 := time.Now()
		params := completionParams("Once upon a time", 16)
		params.Model = "nan"
		var err error
		if i%2 == 0 {
			_, err = c.Completions.New(ctx, params)
		} else {
			s := c.Completions.NewStreaming(ctx, params)
			for s.Next() {
				t.Errorf("stream %d: got a chunk %+v", i, s.Current())
			}
			err = s.Err()
			s.Close()
		}
		took := time.Since(t0)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError ||
			!strings.Contains(apiErr.Message, "non-finite logits") {
			t.Fatalf("request %d: %v, want 500 naming non-finite logits", i, err)
		}
		if apiErr.Response == nil {
			t.Fatalf("request %d: no response with the error", i)
		}
		id := apiErr.Response.Header.Get("X-Request-Id")
		tl := requestTimeline(t, n.Addr(), "", id)
		var phases []string
		evs, _ := tl["events"].([]any)
		for _, ev := range evs {
			e, _ := ev.(map[string]any)
			phases = append(phases, fmt.Sprint(e["phase"]))
		}
		placed := 0
		for _, p := range phases {
			if p == "placed" {
				placed++
			}
		}
		if placed != 1 || slices.Contains(phases, "resumed") {
			t.Fatalf("request %d (%s): timeline %v, want one placement and no resume", i, id, phases)
		}
		t.Logf("request %d: 500 after %v, timeline %v", i, took.Round(time.Millisecond), phases)
		got, err := c.Completions.New(ctx, completionParams("Once upon a time", 16))
		if err != nil || got.Choices[0].Text != want {
			t.Fatalf("good model beside it: %v, %+v", err, got)
		}
	}
	body := scrape(t, "http://"+n.Addr())
	if !strings.Contains(body, `courier_worker_errors_total{code="non_finite_logits",model="nan"} 3`) {
		t.Fatalf("metrics lack 3 non_finite_logits errors:\n%s", grepLines(body, "courier_worker_errors"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
