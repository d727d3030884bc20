package engine

import (
	"fmt"
	"sync"

	"courier/internal/engine/grammar"
)

// grammars holds the engine's vocabulary trie (built on the first
// constrained request) and one grammar.Machine per constraint, so requests
// with the same schema share their cached masks.
type grammars struct {
	once  sync.Once
	vocab *grammar.Vocab

	mu       sync.Mutex
	machines map[string]*grammar.Machine // by Grammar.Key; guarded by mu
	order    []string                    // insertion order, for eviction; guarded by mu
}

// maxMachines bounds the constraints whose masks an engine keeps.
const maxMachines = 64

// machine returns the Machine of g for this engine's vocabulary.
func (e *Engine) machine(g *grammar.Grammar) *grammar.Machine {
	gs := &e.grammars
	gs.once.Do(func() {
		n := e.model.Vocab
		pieces := make([][]byte, n)
		eog := make([]bool, n)
		for i := range n {
			pieces[i] = e.tok.TokenPiece(int32(i))
			eog[i] = e.tok.IsEOG(int32(i))
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

// startGrammar gives sl a matcher for req.Grammar and replays the resumed
// tokens through it: the grammar state is a function of the tokens.
func (e *Engine) startGrammar(sl *slot, req *Request) error {
	sl.gm = nil
	if req.Grammar == nil {
		return nil
	}
	sl.gm = e.machine(req.Grammar).NewMatcher()
	for i, t := range req.Resume {
		if !sl.gm.Accept(t) {
			return fmt.Errorf("%w: resumed token %d (#%d) is not allowed by the request's grammar", ErrInvalidRequest, t, i)
		}
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
