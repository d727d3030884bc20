package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"courier/internal/testutil"
)

// TestBackgroundYieldsToForeground runs a background generation and, while
// it runs, a foreground one: the background sequence gets no rows while the
// foreground one is running, and resumes after it.
func TestBackgroundYieldsToForeground(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var bgTokens atomic.Int64
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		res, err := e.Generate(context.Background(), Request{Prompt: []int32{1, 403}, MaxTokens: 400, IgnoreEOS: true, Background: true},
			func(Token) error {
				if bgTokens.Add(1) == 5 {
					close(started)
				}
				return nil
			})
		if err != nil || res.CompletionTokens != 400 {
			t.Errorf("background: %+v, %v", res, err)
		}
	})
	<-started
	before := bgTokens.Load()
	res, err := e.Generate(context.Background(), Request{Prompt: []int32{1, 407}, MaxTokens: 60, IgnoreEOS: true},
		func(Token) error { return nil })
	during := bgTokens.Load() - before
	wg.Wait()
	if err != nil || res.CompletionTokens != 60 {
		t.Fatalf("foreground: %+v, %v", res, err)
	}
	if during > 5 {
		t.Fatalf("the background sequence got %d tokens while a foreground one ran 60 steps", during)
	}
}
