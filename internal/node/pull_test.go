package node

import (
	"errors"
	"testing"

	"courier/internal/api"
)

// TestDeleteWaitsForNoPull: /api/delete while a pull or load runs (the
// puller's one slot taken) is refused at once, before it looks at the
// store: the pull may be writing or loading the very files.
func TestDeleteWaitsForNoPull(t *testing.T) {
	p := &puller{sem: make(chan struct{}, 1)}
	p.sem <- struct{}{} // a pull runs
	if err := p.Delete("acme/model-GGUF:Q4_0", ""); !errors.Is(err, api.ErrModelInUse) {
		t.Fatalf("Delete during a pull: %v, want ErrModelInUse", err)
	}
	if len(p.sem) != 1 {
		t.Fatal("Delete took or released the running pull's slot")
	}
}
