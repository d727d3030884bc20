package model

import (
	"slices"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/tensor"
	"courier/internal/testutil"
)

// TestLogitsRowsBesideEmbdRows evaluates a prompt whose last row wants
// logits alone, then in one batch after (and before) another sequence's
// rows that want hidden states (an Embed beside a Score): the logits and
// the hidden states are the same bits each way. The output matrix once ran
// a logits row in the mode of the Embd row at its place in the batch (a
// prompt kernel instead of the decode kernel), changing the last bits of
// the logits whenever an Embed's rows preceded a Score's or a sequence's
// last prompt row in a step.
func TestLogitsRowsBesideEmbdRows(t *testing.T) {
	gf, err := gguf.Open(testutil.Model(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	m, err := Load(gf)
	if err != nil {
		t.Fatal(err)
	}
	pool := tensor.NewPool(2)
	defer pool.Close()
	s, err := NewState(m, pool, 64, 4)
	if err != nil {
		t.Fatal(err)
	}
	tokens := func(n, base int32) []int32 {
		p := []int32{1}
		for i := int32(1); i < n; i++ {
			p = append(p, base+i%97)
		}
		return p
	}
	score, embed := tokens(13, 100), tokens(9, 300)
	// add appends p's rows to b on a fresh cache: the last row wants
	// logits, or every row its hidden state.
	add := func(b *Batch, p []int32, emb bool) {
		c, err := NewPrivateKVCache(&m.Config, 64)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range p {
			b.Tokens = append(b.Tokens, tok)
			b.Pos = append(b.Pos, int32(i))
			b.Seqs = append(b.Seqs, c)
			b.Logits = append(b.Logits, !emb && i == len(p)-1)
			b.Modes = append(b.Modes, PromptRowMode(i, len(p)))
			b.Embd = append(b.Embd, emb)
		}
	}
	run := func(order ...bool) (logits, hidden []float32) {
		var b Batch
		for _, emb := range order {
			if emb {
				add(&b, embed, true)
			} else {
				add(&b, score, false)
			}
		}
		out, err := s.Forward(&b)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(out), slices.Clone(s.Embeddings())
	}
	wantLogits, _ := run(false)
	_, wantHidden := run(true)
	for _, order := range [][]bool{{true, false}, {false, true}} {
		logits, hidden := run(order...)
		if !slices.Equal(logits, wantLogits) {
			d := 0
			for i := range logits {
				if logits[i] != wantLogits[i] {
					d++
				}
			}
			t.Errorf("order %v (true: the Embd rows): %d of %d logits differ from the prompt's alone", order, d, len(logits))
		}
		if !slices.Equal(hidden, wantHidden) {
			t.Errorf("order %v (true: the Embd rows): hidden states differ from the Embd rows' alone", order)
		}
	}
}
