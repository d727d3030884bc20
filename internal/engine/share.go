package engine

import "slices"

// A group of requests with one prompt (Request.Share, the n choices of a
// client's request) evaluates the prompt once: the group's first running
// request (its leader, the earliest in the scheduler's active list) does,
// and the others fork its KV cache. Forked rows hold the bits the request
// would have computed itself (every row's mode depends only on its
// position in the input), so sharing changes no result.

// groupLeader returns the request sl forks from: an earlier active request
// of sl's group with the same input, still running; nil when none.
func (s *scheduler) groupLeader(sl *slot) *slot {
	if sl.req.Share == "" || sl.nInput != len(sl.req.Prompt) {
		return nil // no group, or resumed: its input is not the group's
	}
	for _, ld := range s.active {
		if ld == sl {
			return nil
		}
		if ld.req.Share == sl.req.Share && ld.nInput == sl.nInput && ld.err == nil && !ld.cancelled.Load() &&
			slices.Equal(ld.tokens[:ld.nInput], sl.tokens[:sl.nInput]) {
			return ld
		}
	}
	return nil
}

// waitsForGroup reports whether sl, not yet started, waits for its group's
// leader to finish evaluating the prompt (then it forks it). A leader's
// nPast counts the rows of the step being built, which are not computed
// yet: while any of its prompt rows are among them, sl waits too.
func (s *scheduler) waitsForGroup(sl *slot) bool {
	if sl.nPast != 0 || sl.cache.Blocks() != 0 {
		return false
	}
	ld := s.groupLeader(sl)
	return ld != nil && (ld.nPast < ld.nInput || (ld.nPast == ld.nInput && ld.inBatch))
}

// forkGroup starts sl from its leader's cache: every prompt position but
// the last (evaluated by sl for its own logits). It reports false when
// there is nothing to fork or no block for the copy of a partial block
// (sl then evaluates as usual, from the prefix cache).
func (s *scheduler) forkGroup(sl *slot) bool {
	ld := s.groupLeader(sl)
	if ld == nil {
		return false
	}
	if ld.nPast < ld.nInput || (ld.nPast == ld.nInput && ld.inBatch) {
		return false // its prompt is not computed yet
	}
	n := sl.nInput - 1
	if n <= 0 || !ld.cache.Fork(sl.cache, n) {
		return false
	}
	sl.nPast = n
	s.e.forked.Add(int64(n))
	return true
}
