package model

import "testing"

func TestPromptRowMode(t *testing.T) {
	cases := []struct {
		i, n int
		want RowMode
	}{
		{0, 1, RowDecode},
		{0, 2, RowPrompt},
		{2, 3, RowPrompt},
		{3, 6, RowPrompt | RowPromptGemm},
		{4, 6, RowPrompt},
		{63, 64, RowPrompt | RowPromptGemm | RowPromptTiledAttention},
		{511, 513, RowPrompt | RowPromptGemm | RowPromptTiledAttention},
		{512, 513, RowDecode}, // the second ubatch has one row
		{600, 700, RowPrompt | RowPromptGemm | RowPromptTiledAttention},
		{699, 702, RowPrompt | RowPromptGemm | RowPromptTiledAttention},
		{700, 702, RowPrompt | RowPromptTiledAttention},
	}
	for _, c := range cases {
		if got := PromptRowMode(c.i, c.n); got != c.want {
			t.Errorf("PromptRowMode(%d, %d) = %b, want %b", c.i, c.n, got, c.want)
		}
	}
}
