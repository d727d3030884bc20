package grammar

import (
	"cmp"
	"slices"
)

// Vocab is a vocabulary's token strings as a byte trie: built once per
// model, immutable, shared by every Machine.
type Vocab struct {
	size   int
	pieces [][]byte
	eogSet []bool
	eog    []int32

	// Trie node i's children are childByte/childNode[childStart[i]:childStart[i+1]],
	// sorted by byte; the tokens whose string ends at node i are
	// toks[tokStart[i]:tokStart[i+1]]. Node 0 is the root.
	childStart []int32
	childByte  []byte
	childNode  []int32
	tokStart   []int32
	toks       []int32
}

// NewVocab builds the trie of pieces[id], the bytes each token adds to the
// output (byte-fallback tokens as their byte, SentencePiece's ▁ as a
// space); eog[id] marks end-of-generation tokens. Tokens with no bytes
// (control tokens) other than end-of-generation are never allowed.
func NewVocab(pieces [][]byte, eog []bool) *Vocab {
	v := &Vocab{size: len(pieces), pieces: pieces, eogSet: eog}
	type tnode struct {
		kids map[byte]int32
		toks []int32
	}
	nodes := []tnode{{}}
	for id, p := range pieces {
		if eog[id] {
			v.eog = append(v.eog, int32(id))
			continue
		}
		if len(p) == 0 {
			continue
		}
		n := int32(0)
		for _, c := range p {
			if nodes[n].kids == nil {
				nodes[n].kids = map[byte]int32{}
			}
			k, ok := nodes[n].kids[c]
			if !ok {
				k = int32(len(nodes))
				nodes = append(nodes, tnode{})
				nodes[n].kids[c] = k
			}
			n = k
		}
		nodes[n].toks = append(nodes[n].toks, int32(id))
	}
	// Flatten breadth-agnostic: node ids stay, children sorted by byte.
	v.childStart = make([]int32, len(nodes)+1)
	v.tokStart = make([]int32, len(nodes)+1)
	type edge struct {
		b byte
		n int32
	}
	var es []edge
	for i, nd := range nodes {
		v.childStart[i] = int32(len(v.childByte))
		es = es[:0]
		for b, k := range nd.kids {
			es = append(es, edge{b, k})
		}
		slices.SortFunc(es, func(a, b edge) int { return cmp.Compare(a.b, b.b) })
		for _, e := range es {
			v.childByte = append(v.childByte, e.b)
			v.childNode = append(v.childNode, e.n)
		}
		v.tokStart[i] = int32(len(v.toks))
		v.toks = append(v.toks, nd.toks...)
	}
	v.childStart[len(nodes)] = int32(len(v.childByte))
	v.tokStart[len(nodes)] = int32(len(v.toks))
	return v
}

// Size is the number of token ids.
func (v *Vocab) Size() int { return v.size }

func (v *Vocab) isEOG(t int32) bool { return v.eogSet[t] }

func (v *Vocab) piece(t int32) []byte { return v.pieces[t] }
