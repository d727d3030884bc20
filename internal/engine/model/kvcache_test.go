package model

import (
	"slices"
	"testing"
)

// testPool returns a pool of blocks blocks of 4 positions, one layer of
// two K and V values per position.
func testPool(t *testing.T, blocks int) *KVPool {
	t.Helper()
	p, err := NewKVPool(&Config{Layers: 1, KVHeads: 1, HeadDim: 2}, 4, blocks)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fill writes a value derived from each position into c's rows
// [from, n), as a forward pass would, and sets Len.
func fill(c *KVCache, from, n int, seed uint16) {
	for pos := from; pos < n; pos++ {
		k, v := c.row(0, pos)
		for i := range k {
			k[i], v[i] = seed+uint16(pos), seed+uint16(100+pos)
		}
	}
	c.Len = n
}

func rowsOf(c *KVCache, n int) []uint16 {
	var out []uint16
	for pos := range n {
		k, v := c.row(0, pos)
		out = append(out, k...)
		out = append(out, v...)
	}
	return out
}

func seq(n int, base int32) ([]int32, []RowMode) {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = base + int32(i)
	}
	return toks, make([]RowMode, n)
}

// TestMatchPrefixCopiesPartialBlock: a prompt committed with a partly
// filled last block is shared whole by a repeat of it (whole blocks by
// reference, the partial block's rows copied into a block of the new
// sequence's own), a prompt that diverges mid-block shares the rows before
// the divergence, and rows of another mode are not shared.
func TestMatchPrefixCopiesPartialBlock(t *testing.T) {
	p := testPool(t, 16)
	p.RecordCopies()
	toks, modes := seq(11, 10) // blocks of 4: two whole, 3 rows of a third
	a := NewKVCache(p, 64)
	if !a.Reserve(11) {
		t.Fatal("reserve")
	}
	fill(a, 0, 11, 1)
	a.Commit(toks, modes, 11)
	want := rowsOf(a, 11)

	// A repeat shares all but the last position: 8 by reference, 2 copied.
	b := NewKVCache(p, 64)
	if n := b.MatchPrefix(toks, modes, 10); n != 10 {
		t.Fatalf("repeat shared %d positions, want 10", n)
	}
	if b.Table()[0] != a.Table()[0] || b.Table()[1] != a.Table()[1] || b.Table()[2] == a.Table()[2] {
		t.Fatalf("tables %v and %v: want the two whole blocks shared and the third copied", a.Table(), b.Table())
	}
	if got := rowsOf(b, 10); !slices.Equal(got, want[:len(got)]) {
		t.Fatal("the copied rows differ from the cached ones")
	}
	if cp := p.TakeCopies(nil); !slices.Equal(cp, []int32{a.Table()[2], b.Table()[2]}) {
		t.Fatalf("recorded copies %v, want [%d %d]", cp, a.Table()[2], b.Table()[2])
	}
	st := p.Stats()
	if st.HitBlocks != 2 || st.HitPositions != 10 || st.CopiedPositions != 2 {
		t.Fatalf("stats %+v, want 2 hit blocks, 10 positions, 2 copied", st)
	}
	// The new sequence writes its own rows into the copy, not into a's.
	fill(b, 10, 11, 50)
	if !slices.Equal(rowsOf(a, 11), want) {
		t.Fatal("writing the copy changed the cached block")
	}

	// Diverging at position 9: the rows of positions 8 shared, 9 on evaluated.
	d := slices.Clone(toks)
	d[9] = 99
	c := NewKVCache(p, 64)
	if n := c.MatchPrefix(d, modes, 10); n != 9 {
		t.Fatalf("a prompt diverging at 9 shared %d positions", n)
	}
	c.Release()
	// Diverging at position 5, in a whole block: that block's first row.
	d = slices.Clone(toks)
	d[5] = 99
	if n := c.MatchPrefix(d, modes, 10); n != 5 {
		t.Fatalf("a prompt diverging at 5 shared %d positions", n)
	}
	c.Release()
	// Another mode from position 6 on: 6 positions.
	m := slices.Clone(modes)
	for i := 6; i < len(m); i++ {
		m[i] = RowPrompt
	}
	if n := c.MatchPrefix(toks, m, 10); n != 6 {
		t.Fatalf("rows of another mode: %d positions shared", n)
	}
	c.Release()
	// A limit inside the first block copies from it.
	if n := c.MatchPrefix(toks, modes, 3); n != 3 || c.Blocks() != 1 || c.Table()[0] == a.Table()[0] {
		t.Fatalf("limit 3: %d positions in blocks %v", n, c.Table())
	}
	c.Release()

	// b committing the same prompt registers nothing new: its copy holds
	// rows a's block holds already.
	b.Commit(toks, modes, 11)
	if kids := p.children[p.meta[a.Table()[2]].parent]; len(kids) != 1 {
		t.Fatalf("%d partial blocks after two commits of one prompt", len(kids))
	}
	a.Release()
	b.Release()
	if p.FreeBlocks() != p.Blocks() {
		t.Fatalf("%d of %d blocks free after every sequence released", p.FreeBlocks(), p.Blocks())
	}
	for blk, r := range p.ref {
		if r != 0 {
			t.Fatalf("block %d has %d users after every sequence released", blk, r)
		}
	}
}

// TestPartialMatchUnderPressure: the block a partial match copies from may
// be the oldest evictable one; the copy then takes another, and when the
// source is the only one left the match shares nothing rather than evict
// its own source. Once the source is evicted nothing matches it any more.
func TestPartialMatchUnderPressure(t *testing.T) {
	p := testPool(t, 4)
	toks, modes := seq(3, 10) // 3 rows of one block
	a := NewKVCache(p, 64)
	if !a.Reserve(3) {
		t.Fatal("reserve")
	}
	fill(a, 0, 3, 1)
	a.Commit(toks, modes, 3)
	want := rowsOf(a, 3)
	src := a.Table()[0]
	a.Release() // cached, unused: the oldest evictable block
	other, om := seq(4, 70)
	o := NewKVCache(p, 64)
	if !o.Reserve(4) {
		t.Fatal("reserve")
	}
	fill(o, 0, 4, 7)
	o.Commit(other, om, 4)
	o.Release() // a second evictable block, newer

	hog := NewKVCache(p, 64)
	if !hog.Reserve(8) { // the two free blocks
		t.Fatal("reserve hog")
	}
	b := NewKVCache(p, 64)
	if n := b.MatchPrefix(toks, modes, 2); n != 2 || b.Blocks() != 1 {
		t.Fatalf("shared %d positions in %d blocks, want 2 in 1", n, b.Blocks())
	}
	if b.Table()[0] == src || !slices.Equal(rowsOf(b, 2), want[:8]) {
		t.Fatalf("blocks %v: the copy took its source %d, or its rows differ", b.Table(), src)
	}
	// The other block was evicted for the copy: it matches no more.
	c := NewKVCache(p, 64)
	if n := c.MatchPrefix(other, om, 4); n != 0 {
		t.Fatalf("an evicted block shared %d positions", n)
	}
	// Now the source is the only evictable block and nothing is free.
	if n := c.MatchPrefix(toks, modes, 2); n != 0 || c.Blocks() != 0 {
		t.Fatalf("no block for a copy: shared %d positions in %d blocks", n, c.Blocks())
	}
	if p.ref[src] != 0 || p.FreeBlocks() != 1 {
		t.Fatalf("source has %d users, %d blocks free: want 0 and 1", p.ref[src], p.FreeBlocks())
	}
	b.Release()
	hog.Release()
	// Evict the source: a reservation of every block takes it.
	if !hog.Reserve(16) {
		t.Fatal("reserve all")
	}
	hog.Release()
	if n := c.MatchPrefix(toks, modes, 2); n != 0 {
		t.Fatalf("after eviction %d positions shared", n)
	}
	if len(p.children) != 0 || len(p.cached) != 0 {
		t.Fatalf("index holds %d parents and %d blocks after eviction", len(p.children), len(p.cached))
	}
	if p.FreeBlocks() != p.Blocks() {
		t.Fatalf("%d of %d blocks free", p.FreeBlocks(), p.Blocks())
	}
}
