package e2e

import (
	"cmp"
	"encoding/json"
	"slices"
	"testing"
)

// TestBestOf: best_of 4 with n 2 returns, of the four candidates (sampled
// with seed+j as n 4 samples them), the two with the highest cumulative
// log-probability, best first, numbered 0 and 1, without logprobs unless
// asked; usage counts every candidate's tokens. best_of below n, or
// streamed, is a 400.
func TestBestOf(t *testing.T) {
	n := startNode(t, serveConfig(t))
	addr := n.Addr()
	const base = `{"model":"` + modelName + `","prompt":"Once upon a time","max_tokens":12,"temperature":1,"seed":7`
	type answer struct {
		Choices []struct {
			Text     string `json:"text"`
			Index    int    `json:"index"`
			Logprobs *struct {
				TokenLogprobs []float64 `json:"token_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	get := func(body string) answer {
		t.Helper()
		st, data := postJSON(t, addr, "/v1/completions", body)
		var a answer
		if st != 200 || json.Unmarshal(data, &a) != nil {
			t.Fatalf("%s: %d %s", body, st, data)
		}
		return a
	}
	all := get(base + `,"n":4,"logprobs":0}`)
	type cand struct {
		text string
		sum  float64
	}
	var cands []cand
	for _, c := range all.Choices {
		var s float64
		for _, lp := range c.Logprobs.TokenLogprobs {
			s += lp
		}
		cands = append(cands, cand{c.Text, s})
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return cmp.Compare(b.sum, a.sum) })
	if cands[0].text == cands[3].text {
		t.Fatalf("the four samples do not differ: %+v", cands)
	}
	best := get(base + `,"n":2,"best_of":4}`)
	if len(best.Choices) != 2 || best.Usage.CompletionTokens != all.Usage.CompletionTokens {
		t.Fatalf("best_of: %+v; all four %+v", best, all.Usage)
	}
	for k, c := range best.Choices {
		if c.Index != k || c.Text != cands[k].text || c.Logprobs != nil {
			t.Errorf("choice %d: %q (index %d, logprobs %v), want %q (cumulative %.3f)", k, c.Text, c.Index, c.Logprobs, cands[k].text, cands[k].sum)
		}
	}
	withLP := get(base + `,"best_of":4,"logprobs":1}`)
	if len(withLP.Choices) != 1 || withLP.Choices[0].Text != cands[0].text || withLP.Choices[0].Logprobs == nil {
		t.Errorf("best_of 4 with logprobs: %+v", withLP)
	}
	for _, bad := range []string{base + `,"n":3,"best_of":2}`, base + `,"best_of":2,"stream":true}`} {
		if st, data := postJSON(t, addr, "/v1/completions", bad); st != 400 {
			t.Errorf("%s: %d %s", bad, st, data)
		}
	}
}
