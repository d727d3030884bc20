package worker

import (
	"fmt"
	"strings"
	"sync"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
)

// grammarCache keeps the grammars of recent constraints, so requests with
// the same schema compile it once and (in the engine, by key) share their
// cached token masks.
type grammarCache struct {
	mu    sync.Mutex
	byKey map[string]*grammar.Grammar // guarded by mu
	order []string                    // guarded by mu; oldest first
}

const maxGrammars = 64

// compile returns the grammar of c, compiling it on first use.
func (gc *grammarCache) compile(c *bus.Constraint) (*grammar.Grammar, error) {
	key := c.Type + "\x00" + string(c.Schema) + "\x00" + c.Pattern + "\x00" + c.Grammar + "\x00" + strings.Join(c.Choices, "\x00")
	return gc.get(key, func() (*grammar.Grammar, error) {
		return grammar.Compile(grammar.Spec{Type: c.Type, Schema: c.Schema, Pattern: c.Pattern, Choices: c.Choices, Grammar: c.Grammar})
	})
}

// get returns the grammar cached under key, building it on first use.
func (gc *grammarCache) get(key string, build func() (*grammar.Grammar, error)) (*grammar.Grammar, error) {
	gc.mu.Lock()
	if g, ok := gc.byKey[key]; ok {
		gc.mu.Unlock()
		return g, nil
	}
	gc.mu.Unlock()
	g, err := build()
	if err != nil {
		return nil, fmt.Errorf("constraint: %w", err)
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.byKey == nil {
		gc.byKey = map[string]*grammar.Grammar{}
	}
	if len(gc.order) >= maxGrammars {
		delete(gc.byKey, gc.order[0])
		gc.order = gc.order[1:]
	}
	if _, ok := gc.byKey[key]; !ok {
		gc.order = append(gc.order, key)
	}
	gc.byKey[key] = g
	return g, nil
}
