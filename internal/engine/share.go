package engine

import "slices"

// A group of requests with one prompt (Request.Share, the n choices of a
// client's request) evaluates the prompt once: the group's first running
// request (its leader, the earliest in the scheduler's active list) does,
// and the others fork its KV cache. Forked rows hold the bits the request
// would have computed itself (a prompt row's mode depends only on its
// position in the prompt), so sharing changes no result. A resumed request
// (Request.Resume: the choices of a request re-dispatched after its worker
// was lost) shares the prompt as well: it forks all of it and evaluates
// its resumed tokens, which differ from choice to choice, itself; a fresh
// one forks every prompt position but the last, whose logits it needs.

// groupLeader returns the request sl forks from: an earlier active request
// of sl's group with the same prompt, still running; nil when none.
func (s *scheduler) groupLeader(sl *slot) *slot {
	if sl.req.Share == "" {
		return nil
	}
	p := len(sl.req.Prompt)
	for _, ld := range s.active {
		if ld == sl {
			return nil
		}
		if ld.req.Share == sl.req.Share && len(ld.req.Prompt) == p && ld.err == nil && !ld.cancelled.Load() &&
			slices.Equal(ld.tokens[:p], sl.tokens[:p]) {
			return ld
		}
	}
	return nil
}

// promptDone reports whether ld's prompt is in its cache: evaluated, and
// none of its rows in the step being built (which is not computed yet).
func promptDone(ld *slot) bool {
	p := len(ld.req.Prompt)
	return ld.nPast >= p && !(ld.inBatch && ld.batchFrom < p)
}

// waitsForGroup reports whether sl, not yet started, waits for its group's
// leader to finish evaluating the prompt (then it forks it).
func (s *scheduler) waitsForGroup(sl *slot) bool {
	if sl.nPast != 0 || sl.cache.Blocks() != 0 {
		return false
	}
	ld := s.groupLeader(sl)
	return ld != nil && !promptDone(ld)
}

// forkGroup starts sl from its leader's cache: the prompt's positions, but
// for the last one when sl evaluates nothing after it (it needs that row's
// logits). It reports false when there is nothing to fork or no block for
// the copy of a partial block (sl then evaluates as usual, from the prefix
// cache).
func (s *scheduler) forkGroup(sl *slot) bool {
	ld := s.groupLeader(sl)
	if ld == nil || !promptDone(ld) {
		return false
	}
	n := min(len(sl.req.Prompt), sl.nInput-1)
	if n <= 0 || !ld.cache.Fork(sl.cache, n) {
		return false
	}
	sl.nPast = n
	s.e.forked.Add(int64(n))
	return true
}
