package natsbus

import (
	"hash/maphash"
	"maps"
	"strings"

	"courier/internal/bus"
)

// Prefix affinity: requests that share a long prefix go to the worker that
// last ran it, whose engine probably still holds its KV blocks in the
// prefix cache. The gateway does not tokenize: it hashes the request's
// text (prefixText) as a chain over fixed-size byte chunks, and remembers,
// per model, which worker incarnation each link of a placed request's
// chain last went to. A new request walks its own chain through that
// memory: the deepest remembered link names the worker holding the longest
// shared prefix. pickLocked decides whether that worker gets it.

const (
	// prefixChunk is the bytes of text per link of a prefix chain: the
	// granularity of matching.
	prefixChunk = 64
	// prefixMaxBytes caps the text hashed per request (256 links); a
	// longer shared prefix is decisive long before its end.
	prefixMaxBytes = 16 << 10
	// Defaults of GatewayConfig's prefix fields.
	defaultPrefixMinBytes = 256
	defaultPrefixSlack    = 2
	defaultPrefixEntries  = 1 << 16
)

// Prefix affinity results, the values of courier_prefix_affinity_total's
// result label.
const (
	affinityNone = iota // not considered: off, resumed, or text too short
	affinityHit         // sent to the worker holding the longest match
	affinityMiss        // no remembered match of the minimum length on a live worker
	affinityBusy        // a match, but that worker was full or too loaded
)

var affinityNames = [...]string{affinityHit: "hit", affinityMiss: "miss", affinityBusy: "busy"}

// prefixChain hashes req's text into its chain: links[i] is the hash of the
// text's first (i+1)*prefixChunk bytes (a trailing partial chunk has no
// link). The text is the completion's prompt; the chat's messages in order
// (role, name, content); the classification's template, labels, then
// inputs. Fields are escaped and terminated so that different requests
// never produce the same text, while a shared leading part of a field
// still gives a shared prefix.
func prefixChain(seed maphash.Seed, req *bus.Request) []uint64 {
	c := chainer{links: make([]uint64, 0, 16)}
	c.h.SetSeed(seed)
	switch req.Kind {
	case bus.KindChat:
		c.write("h")
		for _, m := range req.Messages {
			c.field(m.Role)
			c.field(m.Name)
			c.field(m.Content)
		}
	case bus.KindClassification:
		c.write("k")
		c.field(req.Template)
		for _, l := range req.Labels {
			c.field(l)
		}
		c.write("\x00\x02") // labels end
		for _, in := range req.Inputs {
			c.field(in)
		}
	default:
		c.write("c")
		c.write(req.Prompt)
	}
	return c.links
}

// chainer cuts written bytes into prefixChunk-sized chunks and records the
// running hash after each one, up to prefixMaxBytes.
type chainer struct {
	h     maphash.Hash
	buf   [prefixChunk]byte
	n     int // bytes in buf
	links []uint64
}

func (c *chainer) full() bool { return len(c.links)*prefixChunk >= prefixMaxBytes }

// write adds s to the text, up to prefixMaxBytes.
func (c *chainer) write(s string) {
	for len(s) > 0 && !c.full() {
		k := copy(c.buf[c.n:], s)
		c.n += k
		s = s[k:]
		if c.n == prefixChunk {
			_, _ = c.h.Write(c.buf[:])
			c.links = append(c.links, c.h.Sum64())
			c.n = 0
		}
	}
}

// field writes s with each 0 byte doubled, then the terminator 0 1: the
// encoding of a list of fields is unambiguous and keeps shared prefixes.
func (c *chainer) field(s string) {
	for len(s) > 0 && !c.full() {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			c.write(s)
			break
		}
		c.write(s[:i+1])
		c.write("\x00")
		s = s[i+1:]
	}
	c.write("\x00\x01")
}

// prefixTable remembers which worker incarnation (epoch) each chain link
// of one model last went to. It holds at most limit links per generation
// in two generations: when the current one is full it becomes the old one
// and the previous old one is dropped, so links not placed again age out,
// as in an LRU, at a map write per link.
type prefixTable struct {
	cur, old map[uint64]uint64
	limit    int
}

func (t *prefixTable) get(h uint64) (uint64, bool) {
	if e, ok := t.cur[h]; ok {
		return e, true
	}
	e, ok := t.old[h]
	return e, ok
}

func (t *prefixTable) put(h, epoch uint64) {
	if len(t.cur) >= t.limit {
		t.old, t.cur = t.cur, make(map[uint64]uint64, t.limit)
	}
	t.cur[h] = epoch
}

// affinityOn reports whether prefix affinity is enabled.
func (g *Gateway) affinityOn() bool { return g.cfg.PrefixMinBytes > 0 }

// minLinks is the chain links a match needs: PrefixMinBytes rounded up to
// whole chunks.
func (g *Gateway) minLinks() int {
	return (g.cfg.PrefixMinBytes + prefixChunk - 1) / prefixChunk
}

// affinityLocked returns the worker serving model that holds the longest
// remembered prefix of links, at least minLinks long, or nil. Links are
// walked from the start until one is unknown; the deepest one whose
// worker is still the same live incarnation wins (a worker that left, or
// restarted with an empty cache, has a new epoch or none).
func (g *Gateway) affinityLocked(model string, links []uint64) *workerState {
	t := g.prefixes[model]
	if t == nil {
		return nil
	}
	var found *workerState
	for i, h := range links {
		e, ok := t.get(h)
		if !ok {
			break
		}
		if i+1 < g.minLinks() {
			continue
		}
		for _, w := range g.workers {
			if w.epoch == e && w.serves(model) {
				found = w
				break
			}
		}
	}
	return found
}

// recordLocked remembers that links went to w, for model.
func (g *Gateway) recordLocked(model string, links []uint64, w *workerState) {
	t := g.prefixes[model]
	if t == nil {
		t = &prefixTable{cur: map[uint64]uint64{}, limit: max(g.cfg.PrefixEntries/2, 1)}
		g.prefixes[model] = t
	}
	for _, h := range links {
		t.put(h, w.epoch)
	}
}

// countAffinityLocked counts one new request's placement under result.
func (g *Gateway) countAffinityLocked(model string, result int) {
	if result == affinityNone {
		return
	}
	n := g.affinity[model]
	if n == nil {
		n = new([len(affinityNames)]int64)
		g.affinity[model] = n
	}
	n[result]++
}

// PrefixAffinity counts the new requests placed since the gateway started
// by prefix affinity result ("hit", "miss", "busy"), by model; models of
// the workers known now are present with zeros. Requests too short for a
// match, and re-dispatched ones, are not counted. Nil when prefix affinity
// is off.
func (g *Gateway) PrefixAffinity() map[string]map[string]int64 {
	if !g.affinityOn() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	models := maps.Clone(g.affinity)
	for _, w := range g.workers {
		for _, m := range w.hb.Models {
			if models[m] == nil {
				models[m] = new([len(affinityNames)]int64)
			}
		}
	}
	out := make(map[string]map[string]int64, len(models))
	for m, n := range models {
		byResult := make(map[string]int64, 3)
		for r := affinityHit; r < len(affinityNames); r++ {
			byResult[affinityNames[r]] = n[r]
		}
		out[m] = byResult
	}
	return out
}
