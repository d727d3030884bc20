package model

import (
	"fmt"
	"slices"
	"sync"

	"courier/internal/engine/tensor"
)

// KVPool is paged memory for the keys and values of many sequences: a
// fixed number of blocks of BlockSize positions each, allocated once. A
// sequence's KVCache is a table of blocks, so memory is committed as
// sequences grow, not reserved for the whole context up front.
//
// Full blocks evaluated from a prompt can be registered by content (the
// tokens of the block and of every block before it), so a later sequence
// with the same prefix shares them instead of recomputing them (prefix
// caching). A prompt's partly filled last block is registered too, by its
// parent chain and the rows it holds: a later sequence whose prompt goes
// on matching past its last whole shared block copies that block into one
// of its own (copy on write) and starts after the matching rows. Blocks
// are reference-counted; cached blocks nobody uses are evicted least
// recently used first when the pool runs out.
//
// KVPool is safe for concurrent use; the forward pass reads block contents
// without locking, which is safe because a block is written only by the
// sequence that allocated it, before it is shared.
type KVPool struct {
	blockSize, layers, kvDim int
	blockStride              int      // layers * blockSize * kvDim
	k, v                     []uint16 // [blocks][layers][blockSize][kvDim], F16

	mu     sync.Mutex
	ref    []int32          // [blocks] users of each block; guarded by mu
	free   []int32          // blocks with no users and no cached content; guarded by mu
	cached map[uint64]int32 // content hash -> full block; guarded by mu
	// children lists the cached blocks, full or partial, by their
	// parent's hash (0 for a first block), where a prompt that matches
	// part of a block finds the rows to copy; guarded by mu.
	children map[uint64][]int32
	meta     []blockMeta // [blocks]; guarded by mu
	lru      lruList     // cached blocks with no users, oldest first; guarded by mu
	stats    PrefixStats // guarded by mu
	// copies lists the block copies Fork and MatchPrefix made (source,
	// destination pairs) since the last TakeCopies, when recording;
	// guarded by mu.
	copies    []int32
	recording bool
}

// RecordCopies makes the pool list the block copies Fork and MatchPrefix
// make, for a pipeline's later stages to repeat (TakeCopies).
func (p *KVPool) RecordCopies() {
	p.mu.Lock()
	p.recording = true
	p.mu.Unlock()
}

// TakeCopies appends the block copies made since the last call, as
// (source, destination) pairs, to dst and forgets them.
func (p *KVPool) TakeCopies(dst []int32) []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	dst = append(dst, p.copies...)
	p.copies = p.copies[:0]
	return dst
}

// ForgetCached makes every cached block unshareable: a pipeline's first
// stage calls it when its later stages change, since the blocks' later
// layers lived on the stages that are gone. Blocks in use stay with their
// users; unused ones become free.
func (p *KVPool) ForgetCached() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b := range p.meta {
		if !p.meta[b].isCached {
			continue
		}
		p.uncacheLocked(int32(b))
		if p.ref[b] == 0 {
			p.lru.remove(int32(b))
			p.free = append(p.free, int32(b))
		}
	}
}

// CopyBlock copies block src's keys and values into block dst (a later
// stage repeating its first stage's Fork or partial prefix match).
func (p *KVPool) CopyBlock(src, dst int32) error {
	if src < 0 || dst < 0 || int(src) >= len(p.ref) || int(dst) >= len(p.ref) {
		return fmt.Errorf("model: copy of block %d to %d in a pool of %d", src, dst, len(p.ref))
	}
	s, d := int(src)*p.blockStride, int(dst)*p.blockStride
	copy(p.k[d:d+p.blockStride], p.k[s:s+p.blockStride])
	copy(p.v[d:d+p.blockStride], p.v[s:s+p.blockStride])
	return nil
}

// blockMeta records what a cached block holds, to verify hash matches.
type blockMeta struct {
	hash, parent uint64    // hash: of a full block only
	tokens       []int32   // [blockSize]
	modes        []RowMode // [blockSize] the arithmetic each row was computed with
	rows         int       // rows registered: blockSize, or fewer for a prompt's partial last block
	isCached     bool
}

// PrefixStats counts prefix-cache lookups.
type PrefixStats struct {
	LookupBlocks int64 // full prompt blocks looked up
	HitBlocks    int64 // of which were found cached
	// HitPositions counts the positions sequences took from the cache:
	// those of whole blocks shared, and the matching rows of blocks
	// copied (CopiedPositions of them).
	HitPositions, CopiedPositions int64
}

// NewKVPool allocates a pool of blocks blocks of blockSize positions.
func NewKVPool(cfg *Config, blockSize, blocks int) (*KVPool, error) {
	if blockSize <= 0 || blocks <= 0 {
		return nil, fmt.Errorf("model: kv pool of %d blocks of %d positions", blocks, blockSize)
	}
	p := &KVPool{
		blockSize: blockSize, layers: cfg.Layers, kvDim: cfg.KVDim(),
		blockStride: cfg.Layers * blockSize * cfg.KVDim(),
		ref:         make([]int32, blocks),
		free:        make([]int32, 0, blocks),
		cached:      make(map[uint64]int32, blocks),
		children:    make(map[uint64][]int32),
		meta:        make([]blockMeta, blocks),
		lru:         newLRU(blocks),
	}
	n := blocks * p.blockStride
	p.k, p.v = make([]uint16, n), make([]uint16, n)
	if prefaultFits(int64(4 * n)) { // K and V, two bytes an element
		prefault(p.k)
		prefault(p.v)
	}
	for b := blocks - 1; b >= 0; b-- {
		p.free = append(p.free, int32(b))
		p.meta[b].tokens = make([]int32, blockSize)
		p.meta[b].modes = make([]RowMode, blockSize)
	}
	return p, nil
}

// KVBytesPerPosition is the F16 K and V memory one position takes.
func KVBytesPerPosition(cfg *Config) int { return 2 * 2 * cfg.Layers * cfg.KVDim() }

// BlockSize returns the positions per block.
func (p *KVPool) BlockSize() int { return p.blockSize }

// Blocks returns the pool's size in blocks.
func (p *KVPool) Blocks() int { return len(p.ref) }

// FreeBlocks returns the blocks a new sequence could take now: unused ones
// and cached ones nobody uses (which would be evicted).
func (p *KVPool) FreeBlocks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free) + p.lru.len
}

// Stats returns the prefix-cache counters.
func (p *KVPool) Stats() PrefixStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// allocLocked takes a block with one user, evicting the least recently
// used cached block if no block is free. It reports false when every block
// is in use.
func (p *KVPool) allocLocked() (int32, bool) {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.ref[b] = 1
		return b, true
	}
	b, ok := p.lru.popOldest()
	if !ok {
		return 0, false
	}
	p.uncacheLocked(b)
	p.ref[b] = 1
	return b, true
}

func (p *KVPool) uncacheLocked(b int32) {
	m := &p.meta[b]
	if !m.isCached {
		return
	}
	if m.rows == p.blockSize {
		delete(p.cached, m.hash)
	}
	kids := p.children[m.parent]
	if i := slices.Index(kids, b); i >= 0 {
		kids[i] = kids[len(kids)-1]
		kids = kids[:len(kids)-1]
	}
	if len(kids) == 0 {
		delete(p.children, m.parent)
	} else {
		p.children[m.parent] = kids
	}
	m.isCached = false
}

// cacheLocked registers b as holding rows tokens computed with modes,
// after the blocks whose chain hash is parent (hash: its own chain hash,
// used when it is full).
func (p *KVPool) cacheLocked(b int32, hash, parent uint64, tokens []int32, modes []RowMode) {
	m := &p.meta[b]
	m.hash, m.parent, m.rows, m.isCached = hash, parent, len(tokens), true
	copy(m.tokens, tokens)
	copy(m.modes, modes)
	if m.rows == p.blockSize {
		p.cached[hash] = b
	}
	p.children[parent] = append(p.children[parent], b)
}

// bestChildLocked returns the cached block after parent whose rows match
// the longest prefix of tokens (with the same modes), and that length.
func (p *KVPool) bestChildLocked(parent uint64, tokens []int32, modes []RowMode) (int32, int) {
	best, n := int32(-1), 0
	for _, b := range p.children[parent] {
		m := &p.meta[b]
		k := 0
		for k < m.rows && k < len(tokens) && m.tokens[k] == tokens[k] && m.modes[k] == modes[k] {
			k++
		}
		if k > n {
			best, n = b, k
		}
	}
	return best, n
}

// releaseLocked drops one user of b; an unused block becomes evictable if
// it is cached, free otherwise.
func (p *KVPool) releaseLocked(b int32) {
	p.ref[b]--
	if p.ref[b] > 0 {
		return
	}
	if p.meta[b].isCached {
		p.lru.pushNewest(b)
		return
	}
	p.free = append(p.free, b)
}

// KVCache is one sequence's view of a KVPool: a table of blocks. It is
// used by one goroutine at a time.
type KVCache struct {
	pool  *KVPool
	table []int32 // block ids in position order
	cap   int     // positions backed by blocks: len(table) * blockSize
	// Len is the number of positions written. Forward advances it.
	Len int
}

// NewKVCache returns an empty cache drawing blocks from pool, for
// sequences of up to maxLen positions.
func NewKVCache(pool *KVPool, maxLen int) *KVCache {
	return &KVCache{pool: pool, table: make([]int32, 0, (maxLen+pool.blockSize-1)/pool.blockSize)}
}

// NewPrivateKVCache returns a cache with a pool of its own, large enough
// for capacity positions (for tests and single-sequence use).
func NewPrivateKVCache(cfg *Config, capacity int) (*KVCache, error) {
	const bs = 16
	pool, err := NewKVPool(cfg, bs, (capacity+bs-1)/bs)
	if err != nil {
		return nil, err
	}
	c := NewKVCache(pool, capacity)
	if !c.Reserve(capacity) {
		return nil, fmt.Errorf("model: cannot reserve %d positions", capacity)
	}
	return c, nil
}

// Cap returns the positions currently backed by blocks.
func (c *KVCache) Cap() int { return c.cap }

// Reserve makes sure positions [0, n) are backed by blocks, allocating
// (and evicting cached blocks) as needed. It reports false, allocating
// nothing, when the pool cannot back them or n exceeds the sequence limit.
func (c *KVCache) Reserve(n int) bool {
	p := c.pool
	need := (n + p.blockSize - 1) / p.blockSize
	if need <= len(c.table) {
		return true
	}
	if need > cap(c.table) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free)+p.lru.len < need-len(c.table) {
		return false
	}
	for len(c.table) < need {
		b, _ := p.allocLocked()
		c.table = append(c.table, b)
	}
	c.cap = len(c.table) * p.blockSize
	return true
}

// Release returns every block to the pool and empties the cache.
func (c *KVCache) Release() {
	p := c.pool
	p.mu.Lock()
	for _, b := range c.table {
		p.releaseLocked(b)
	}
	p.mu.Unlock()
	c.table = c.table[:0]
	c.cap, c.Len = 0, 0
}

// Table returns the cache's block ids in position order; it is valid
// until the cache changes.
func (c *KVCache) Table() []int32 { return c.table }

// Pool returns the pool the cache draws blocks from.
func (c *KVCache) Pool() *KVPool { return c.pool }

// SetView makes c a view of blocks table of its pool holding n
// positions, taking no reference on them. A later pipeline stage mirrors
// its first stage's block tables this way (the same ids in a pool of the
// same geometry for its own layers), so the first stage's allocation,
// prefix sharing and preemption decide the later stages' caches too, and
// they keep no per-sequence state.
func (c *KVCache) SetView(table []int32, n int) error {
	if len(table) > cap(c.table) || n < 0 || n > len(table)*c.pool.blockSize {
		return fmt.Errorf("model: view of %d blocks holding %d positions (at most %d blocks)", len(table), n, cap(c.table))
	}
	for _, b := range table {
		if b < 0 || int(b) >= len(c.pool.ref) {
			return fmt.Errorf("model: block %d outside a pool of %d", b, len(c.pool.ref))
		}
	}
	c.table = append(c.table[:0], table...)
	c.cap = len(c.table) * c.pool.blockSize
	c.Len = n
	return nil
}

// Blocks returns the number of blocks the cache holds.
func (c *KVCache) Blocks() int { return len(c.table) }

// MatchPrefix attaches cached blocks holding the longest prefix of tokens
// made of whole blocks, computed with the same row modes, then, when a
// cached block (full, or a prompt's partial last block) after them holds
// the next tokens in its first rows, copies it into a block of the cache's
// own and counts those rows too. It returns how many positions are shared
// (Len is set to it). The cache must be empty. At most limit positions are
// matched.
func (c *KVCache) MatchPrefix(tokens []int32, modes []RowMode, limit int) int {
	p := c.pool
	bs := p.blockSize
	limit = min(len(tokens), limit)
	full := limit / bs
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.LookupBlocks += int64(full)
	var h uint64
	for i := 0; i < full && len(c.table) < cap(c.table); i++ {
		blk, bm := tokens[i*bs:(i+1)*bs], modes[i*bs:(i+1)*bs]
		next := chainHash(h, blk, bm)
		b, ok := p.cached[next]
		if !ok || p.meta[b].parent != h || !equal(p.meta[b].tokens, blk) || !equal(p.meta[b].modes, bm) {
			break
		}
		h = next
		if p.ref[b] == 0 {
			p.lru.remove(b)
		}
		p.ref[b]++
		c.table = append(c.table, b)
		p.stats.HitBlocks++
	}
	c.cap = len(c.table) * bs
	c.Len = c.cap
	if at := c.Len; at < limit && len(c.table) < cap(c.table) {
		end := min(limit, at+bs)
		if src, n := p.bestChildLocked(h, tokens[at:end], modes[at:end]); n > 0 && p.copyLocked(c, src) {
			c.Len += n
			p.stats.CopiedPositions += int64(n)
		}
	}
	p.stats.HitPositions += int64(c.Len)
	return c.Len
}

// copyLocked appends a new block to c holding a copy of block src. It
// reports false when no block is free but src.
func (p *KVPool) copyLocked(c *KVCache, src int32) bool {
	// Hold src while taking a block: it may be the oldest evictable one.
	if p.ref[src] == 0 {
		p.lru.remove(src)
	}
	p.ref[src]++
	defer p.releaseLocked(src)
	b, ok := p.allocLocked()
	if !ok {
		return false
	}
	s, d := int(src)*p.blockStride, int(b)*p.blockStride
	copy(p.k[d:d+p.blockStride], p.k[s:s+p.blockStride])
	copy(p.v[d:d+p.blockStride], p.v[s:s+p.blockStride])
	if p.recording {
		p.copies = append(p.copies, src, b)
	}
	c.table = append(c.table, b)
	c.cap = len(c.table) * p.blockSize
	return true
}

// Commit registers the cache's blocks among positions [0, upto) as
// holding tokens[:upto] computed with modes[:upto], so later sequences can
// share them: full blocks by content, a partly filled last block by its
// parent and rows (later positions of that block may be written after,
// by this cache; they are never shared).
func (c *KVCache) Commit(tokens []int32, modes []RowMode, upto int) {
	p := c.pool
	bs := p.blockSize
	upto = min(upto, c.Len, len(tokens))
	full := upto / bs
	p.mu.Lock()
	defer p.mu.Unlock()
	var h uint64
	for i := 0; i < full; i++ {
		blk, bm := tokens[i*bs:(i+1)*bs], modes[i*bs:(i+1)*bs]
		parent := h
		h = chainHash(parent, blk, bm)
		b := c.table[i]
		m := &p.meta[b]
		if m.isCached && m.rows == bs {
			continue // shared from the cache, or committed before
		}
		if _, taken := p.cached[h]; taken {
			continue // another sequence committed the same content first
		}
		p.uncacheLocked(b) // registered as partial before
		p.cacheLocked(b, h, parent, blk, bm)
	}
	rows := upto - full*bs
	if rows == 0 || full >= len(c.table) {
		return
	}
	b := c.table[full]
	blk, bm := tokens[full*bs:upto], modes[full*bs:upto]
	if p.meta[b].isCached {
		return
	}
	if _, n := p.bestChildLocked(h, blk, bm); n == rows {
		return // a block cached before holds these rows already
	}
	p.cacheLocked(b, 0, h, blk, bm)
}

// row returns the K and V slots of one layer and position.
func (c *KVCache) row(layer, pos int) (k, v []uint16) {
	p := c.pool
	blk, off := int(c.table[pos/p.blockSize]), pos%p.blockSize
	i := blk*p.blockStride + (layer*p.blockSize+off)*p.kvDim
	return p.k[i : i+p.kvDim], p.v[i : i+p.kvDim]
}

// span returns the K and V rows of one layer at positions pos..pos+n-1,
// n <= limit, as strided vectors (row j at j*stride): the positions from
// pos to the end of its block, whose rows of a layer lie one after another.
func (c *KVCache) span(layer, pos, limit int) (k, v []uint16, stride, n int) {
	p := c.pool
	blk, off := int(c.table[pos/p.blockSize]), pos%p.blockSize
	n = min(limit, p.blockSize-off)
	i := blk*p.blockStride + (layer*p.blockSize+off)*p.kvDim
	return p.k[i : i+n*p.kvDim], p.v[i : i+n*p.kvDim], p.kvDim, n
}

// store writes K and V of one layer and position, rounding to F16.
func (c *KVCache) store(layer, pos int, k, v []float32) {
	kd, vd := c.row(layer, pos)
	tensor.RoundF16(kd, k[:len(kd)])
	tensor.RoundF16(vd, v[:len(vd)])
}

// chainHash hashes a block's tokens and row modes together with its
// parent's hash (FNV-1a).
func chainHash(parent uint64, tokens []int32, modes []RowMode) uint64 {
	h := uint64(14695981039346656037) ^ parent
	h *= 1099511628211
	for i, t := range tokens {
		for s := 0; s < 32; s += 8 {
			h ^= uint64(byte(t >> s))
			h *= 1099511628211
		}
		h ^= uint64(modes[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// lruList is an intrusive doubly linked list over block ids, oldest first,
// preallocated so that moving blocks in and out allocates nothing.
type lruList struct {
	prev, next []int32
	in         []bool
	head, tail int32 // -1 when empty
	len        int
}

func newLRU(n int) lruList {
	l := lruList{prev: make([]int32, n), next: make([]int32, n), in: make([]bool, n), head: -1, tail: -1}
	return l
}

func (l *lruList) pushNewest(b int32) {
	l.prev[b], l.next[b] = l.tail, -1
	if l.tail >= 0 {
		l.next[l.tail] = b
	} else {
		l.head = b
	}
	l.tail = b
	l.in[b] = true
	l.len++
}

func (l *lruList) remove(b int32) {
	if !l.in[b] {
		return
	}
	if l.prev[b] >= 0 {
		l.next[l.prev[b]] = l.next[b]
	} else {
		l.head = l.next[b]
	}
	if l.next[b] >= 0 {
		l.prev[l.next[b]] = l.prev[b]
	} else {
		l.tail = l.prev[b]
	}
	l.in[b] = false
	l.len--
}

func (l *lruList) popOldest() (int32, bool) {
	if l.head < 0 {
		return 0, false
	}
	b := l.head
	l.remove(b)
	return b, true
}

// Fork makes dst (which must be empty) hold the first n positions of c:
// c's full blocks among them are shared, and a partial last block is
// copied into a block of dst's own, so dst can append after position n
// without touching c. It reports false when the pool has no block for the
// copy.
func (c *KVCache) Fork(dst *KVCache, n int) bool {
	p := c.pool
	bs := p.blockSize
	full, part := n/bs, n%bs
	if n > c.Len || full+min(part, 1) > cap(dst.table) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if part > 0 && len(p.free)+p.lru.len == 0 {
		return false
	}
	for _, b := range c.table[:full] {
		p.ref[b]++
		if p.ref[b] == 1 {
			p.lru.remove(b)
		}
		dst.table = append(dst.table, b)
	}
	if part > 0 {
		b, _ := p.allocLocked()
		src := int(c.table[full]) * p.blockStride
		d := int(b) * p.blockStride
		copy(p.k[d:d+p.blockStride], p.k[src:src+p.blockStride])
		copy(p.v[d:d+p.blockStride], p.v[src:src+p.blockStride])
		dst.table = append(dst.table, b)
		if p.recording {
			p.copies = append(p.copies, c.table[full], b)
		}
	}
	dst.cap = len(dst.table) * bs
	dst.Len = n
	return true
}

// prefaultFits reports whether a KV pool of size bytes is mapped in at
// allocation (see prefaultBudget).
func prefaultFits(size int64) bool { return size <= prefaultBudget() }
