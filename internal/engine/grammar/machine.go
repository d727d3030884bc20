package grammar

import (
	"sync"
	"unsafe"
)

// node is one entry of a parse stack: the element position to match (a
// byte set) or to return to, and the node below it (-1: the bottom).
type node struct {
	pos    int32
	parent int32
}

// state is an interned set of live stacks.
type state struct {
	tops   []int32 // node ids of stacks whose top is a byte set, sorted
	accept bool    // an empty stack is live: the input so far is complete
	trans  []int32 // [256] next state per byte; unknown until computed
	mask   *Mask   // nil until computed
}

const (
	dead    = 0  // the state with no stack: nothing more can match
	unknown = -1 // a transition not computed yet
)

// maxExpandDepth bounds rule expansion; checkLeftRecursion makes it
// unreachable for compiled grammars.
const maxExpandDepth = 10000

// Machine is a Grammar walked against a Vocab: it interns states, memoises
// transitions and caches masks. It is safe for concurrent use (one lock;
// after warm-up every call is a lookup under it).
type Machine struct {
	g *Grammar
	v *Vocab

	mu       sync.Mutex
	nodes    []node
	nodeIDs  map[node]int32
	states   []state
	stateIDs map[string]int32
	start    int32
	scratch  []int32 // tops being built
	keyBuf   []byte
	seen     []bool  // [vocab] tokens allowed, while building a mask
	walk     []frame // trie walk stack
	maskIDs  int     // ids held by cached masks
}

// maxMaskIDs bounds the ids all cached masks of a Machine hold (about 64
// MiB); past it the masks are dropped and recomputed as needed.
const maxMaskIDs = 16 << 20

// NewMachine prepares g for vocabulary v.
func NewMachine(g *Grammar, v *Vocab) *Machine {
	m := &Machine{g: g, v: v, nodeIDs: map[node]int32{}, stateIDs: map[string]int32{}}
	m.states = append(m.states, state{}) // dead
	m.mu.Lock()
	m.scratch = m.scratch[:0]
	acc := false
	for _, a := range g.rules[g.root] {
		m.expand(a, -1, &acc, 0)
	}
	m.start = m.intern(acc)
	m.mu.Unlock()
	return m
}

func (m *Machine) node(pos, parent int32) int32 {
	k := node{pos, parent}
	if id, ok := m.nodeIDs[k]; ok {
		return id
	}
	id := int32(len(m.nodes))
	m.nodes = append(m.nodes, k)
	m.nodeIDs[k] = id
	return id
}

// expand adds to m.scratch the stacks reached from position pos with
// parent below it, descending into rule references until each stack's top
// is a byte set; a stack that empties sets *acc.
func (m *Machine) expand(pos, parent int32, acc *bool, depth int) {
	if depth > maxExpandDepth {
		return
	}
	g := m.g
	switch e := g.elems[pos]; e.kind {
	case kEnd:
		if parent < 0 {
			*acc = true
			return
		}
		p := m.nodes[parent]
		m.expand(p.pos, p.parent, acc, depth+1)
	case kSet:
		m.scratch = append(m.scratch, m.node(pos, parent))
	case kRef:
		np := parent
		if g.elems[pos+1].kind != kEnd { // a tail reference pushes nothing
			np = m.node(pos+1, parent)
		}
		for _, a := range g.rules[e.arg] {
			m.expand(a, np, acc, depth+1)
		}
	}
}

// intern turns m.scratch (and acc) into a state id.
func (m *Machine) intern(acc bool) int32 {
	t := m.scratch
	sortDedup(&t)
	m.scratch = t
	if len(t) == 0 && !acc {
		return dead
	}
	k := m.keyBuf[:0]
	if acc {
		k = append(k, 1)
	} else {
		k = append(k, 0)
	}
	if len(t) > 0 {
		k = append(k, unsafe.Slice((*byte)(unsafe.Pointer(&t[0])), 4*len(t))...)
	}
	m.keyBuf = k
	if id, ok := m.stateIDs[string(k)]; ok {
		return id
	}
	id := int32(len(m.states))
	m.states = append(m.states, state{tops: append([]int32(nil), t...), accept: acc})
	m.stateIDs[string(k)] = id
	return id
}

func sortDedup(p *[]int32) {
	t := *p
	for i := 1; i < len(t); i++ { // insertion sort: the sets are small
		for j := i; j > 0 && t[j] < t[j-1]; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
	n := 0
	for i, x := range t {
		if i == 0 || x != t[n-1] {
			t[n] = x
			n++
		}
	}
	*p = t[:n]
}

// step is the state after byte c from state s; m.mu is held.
func (m *Machine) step(s int32, c byte) int32 {
	st := &m.states[s]
	if st.trans == nil {
		st.trans = make([]int32, 256)
		for i := range st.trans {
			st.trans[i] = unknown
		}
	}
	if n := st.trans[c]; n != unknown {
		return n
	}
	m.scratch = m.scratch[:0]
	acc := false
	for _, t := range m.states[s].tops {
		nd := m.nodes[t]
		if m.g.sets[m.g.elems[nd.pos].arg].has(c) {
			m.expand(nd.pos+1, nd.parent, &acc, 0)
		}
	}
	n := m.intern(acc)
	m.states[s].trans[c] = n // states may have moved: index again
	return n
}

// Mask lists the tokens a state allows. With Allow, exactly Tokens are
// allowed; otherwise every token except Tokens. Tokens is sorted.
type Mask struct {
	Allow  bool
	Tokens []int32
}

// Allows reports whether the mask allows tok.
func (k *Mask) Allows(tok int32) bool {
	lo, hi := 0, len(k.Tokens)
	for lo < hi {
		mid := (lo + hi) / 2
		if k.Tokens[mid] < tok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	found := lo < len(k.Tokens) && k.Tokens[lo] == tok
	return found == k.Allow
}

type frame struct {
	node  int32 // trie node
	state int32 // grammar state after the node's bytes
	next  int32 // next child index to visit
}

// mask returns (computing once) the mask of state s; m.mu is held.
func (m *Machine) mask(s int32) *Mask {
	if k := m.states[s].mask; k != nil {
		return k
	}
	v := m.v
	if m.seen == nil {
		m.seen = make([]bool, v.size)
	}
	seen := m.seen
	count := 0
	if m.states[s].accept {
		for _, t := range v.eog {
			seen[t] = true
			count++
		}
	}
	w := append(m.walk[:0], frame{node: 0, state: s})
	for len(w) > 0 {
		f := &w[len(w)-1]
		lo, hi := v.childStart[f.node], v.childStart[f.node+1]
		if lo+f.next >= hi {
			w = w[:len(w)-1]
			continue
		}
		i := lo + f.next
		f.next++
		ns := m.step(f.state, v.childByte[i])
		if ns == dead {
			continue
		}
		child := v.childNode[i]
		for _, t := range v.toks[v.tokStart[child]:v.tokStart[child+1]] {
			if !seen[t] {
				seen[t] = true
				count++
			}
		}
		if v.childStart[child] < v.childStart[child+1] {
			w = append(w, frame{node: child, state: ns})
		}
	}
	m.walk = w
	k := &Mask{Allow: 2*count <= v.size}
	n := count
	if !k.Allow {
		n = v.size - count
	}
	k.Tokens = make([]int32, 0, n)
	for i, ok := range seen {
		if ok == k.Allow {
			k.Tokens = append(k.Tokens, int32(i))
		}
		seen[i] = false
	}
	if m.maskIDs+n > maxMaskIDs {
		for i := range m.states {
			m.states[i].mask = nil
		}
		m.maskIDs = 0
	}
	m.maskIDs += n
	m.states[s].mask = k
	return k
}

// Matcher is one generation's position in a Machine. It is not safe for
// concurrent use; the Machine under it is.
type Matcher struct {
	m     *Machine
	state int32
	done  bool // an end-of-generation token was accepted
}

// NewMatcher starts a matcher at the grammar's start.
func (m *Machine) NewMatcher() *Matcher { return &Matcher{m: m, state: m.start} }

// Reset returns the matcher to the start.
func (t *Matcher) Reset() { t.state, t.done = t.m.start, false }

// Accepting reports whether the output so far is complete.
func (t *Matcher) Accepting() bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	return t.m.states[t.state].accept
}

// Mask returns the tokens allowed next (computed on first use of each
// state, then cached). The Mask is shared and must not be modified.
func (t *Matcher) Mask() *Mask {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if t.done {
		return &Mask{Allow: true}
	}
	return t.m.mask(t.state)
}

// Accept advances over token tok and reports whether the grammar allows
// it; on false the matcher is unchanged. An end-of-generation token is
// allowed only where the output is complete.
func (t *Matcher) Accept(tok int32) bool {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.done || tok < 0 || int(tok) >= m.v.size {
		return false
	}
	if m.v.isEOG(tok) {
		if !m.states[t.state].accept {
			return false
		}
		t.done = true
		return true
	}
	piece := m.v.piece(tok)
	if len(piece) == 0 {
		return false
	}
	s := t.state
	for _, c := range piece {
		if s = m.step(s, c); s == dead {
			return false
		}
	}
	t.state = s
	return true
}

// AcceptBytes advances over raw bytes (for tests and tools), reporting
// whether the grammar allows them; on false the matcher is unchanged.
func (t *Matcher) AcceptBytes(b []byte) bool {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	s := t.state
	for _, c := range b {
		if s = m.step(s, c); s == dead {
			return false
		}
	}
	t.state = s
	return true
}

// Done reports whether an end-of-generation token was accepted.
func (t *Matcher) Done() bool { return t.done }

// States reports how many states the machine has interned (for tests and
// benchmarks).
func (m *Machine) States() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.states)
}
