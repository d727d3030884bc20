package engine

import (
	"fmt"
	"sync"

	"courier/internal/engine/grammar"
)

// grammars holds an engine's (or a last stage's) vocabulary trie (built
// on the first constrained request) and one grammar.Machine per
// constraint, so requests with the same schema share their cached masks.
type grammars struct {
	once  sync.Once
	vocab *grammar.Vocab

	mu       sync.Mutex
	machines map[string]*grammar.Machine // by Grammar.Key; guarded by mu
	order    []string                    // insertion order, for eviction; guarded by mu
	// built: the grammars a last stage compiled, by Source.Key, so the
	// streams of one constraint compile it once; guarded by mu.
	built      map[string]*grammar.Grammar
	builtOrder []string
	// building: the compiles under way, by Source.Key, closed when each
	// ends, so a stream whose grammar a compile ahead is building waits
	// for it instead of compiling it again; guarded by mu.
	building map[string]chan struct{}
}

// maxMachines bounds the constraints whose masks an engine keeps.
const maxMachines = 64

// machine returns the Machine of g for this engine's vocabulary.
func (e *Engine) machine(g *grammar.Grammar) *grammar.Machine {
	return e.grammars.machine(g, e.model.Vocab, e.tok)
}

// vocabulary is what a grammar's vocabulary trie reads of a tokenizer.
type vocabulary interface {
	TokenPiece(id int32) []byte
	IsEOG(id int32) bool
}

// machine returns the Machine of g for the vocabulary of n tokens of tok.
func (gs *grammars) machine(g *grammar.Grammar, n int, tok vocabulary) *grammar.Machine {
	gs.once.Do(func() {
		pieces := make([][]byte, n)
		eog := make([]bool, n)
		for i := range n {
			pieces[i] = tok.TokenPiece(int32(i))
			eog[i] = tok.IsEOG(int32(i))
		}
		gs.vocab = grammar.NewVocab(pieces, eog)
	})
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if m, ok := gs.machines[g.Key]; ok {
		return m
	}
	if gs.machines == nil {
		gs.machines = map[string]*grammar.Machine{}
	}
	if len(gs.order) >= maxMachines {
		delete(gs.machines, gs.order[0])
		gs.order = gs.order[1:]
	}
	m := grammar.NewMachine(g, gs.vocab)
	gs.machines[g.Key] = m
	gs.order = append(gs.order, g.Key)
	return m
}

// build returns the grammar compiled from src, compiling it on first use
// (or waiting for the compile of it already under way).
func (gs *grammars) build(src *grammar.Source) (*grammar.Grammar, error) {
	key := src.Key()
	gs.mu.Lock()
	for {
		if g, ok := gs.built[key]; ok {
			gs.mu.Unlock()
			return g, nil
		}
		done, ok := gs.building[key]
		if !ok {
			break
		}
		gs.mu.Unlock()
		<-done // then built, or failed: compile it here to have its error
		gs.mu.Lock()
	}
	if gs.building == nil {
		gs.building = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	gs.building[key] = done
	gs.mu.Unlock()
	g, err := src.Build()
	gs.mu.Lock()
	defer gs.mu.Unlock()
	delete(gs.building, key)
	close(done)
	if err != nil {
		return nil, err
	}
	if gs.built == nil {
		gs.built = map[string]*grammar.Grammar{}
	}
	if _, ok := gs.built[key]; !ok {
		if len(gs.builtOrder) >= maxMachines {
			delete(gs.built, gs.builtOrder[0])
			gs.builtOrder = gs.builtOrder[1:]
		}
		gs.builtOrder = append(gs.builtOrder, key)
	}
	gs.built[key] = g
	return g, nil
}

// startGrammar gives sl a matcher for req.Grammar and replays the resumed
// tokens through it: the grammar state is a function of the tokens. When
// the last stage emits the chunks (req.Out), its stream keeps the
// grammar and samples with it; the first stage only checks the resumed
// tokens here and keeps no matcher.
func (e *Engine) startGrammar(sl *slot, req *Request) error {
	sl.gm = nil
	if req.Grammar == nil {
		return nil
	}
	gm := e.machine(req.Grammar).NewMatcher()
	for i, t := range req.Resume {
		if !gm.Accept(t) {
			return fmt.Errorf("%w: resumed token %d (#%d) is not allowed by the request's grammar", ErrInvalidRequest, t, i)
		}
	}
	if req.Out == nil {
		sl.gm = gm
	}
	return nil
}

// sampleToken draws sl's next token, through the grammar's mask when the
// request has one (and advances the grammar), else freely. -1: the
// grammar allows nothing more.
func (e *Engine) sampleToken(sl *slot, logits []float32) int32 {
	if sl.gm == nil {
		return sl.smp.Sample(logits)
	}
	k := sl.gm.Mask()
	tok := sl.smp.SampleMasked(logits, k.Allow, k.Tokens)
	if tok >= 0 && !sl.gm.Accept(tok) {
		return -1 // cannot happen: the mask allowed it
	}
	return tok
}
