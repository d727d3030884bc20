package natsbus

// Fair queueing between tenants.
//
// A model's waiters of one kind (interactive or background) are served in
// rounds: each round takes at most one waiter of every tenant
// (bus.Request.Tenant), and within a round waiters go in arrival order. A
// waiter's round is fixed when it queues: the round after its tenant's
// latest waiter still queued, but never a round already passed (the round
// of the last waiter placed from the queue). So a tenant that queues 60
// requests at once fills rounds r … r+59, and another tenant's request
// arriving meanwhile joins the current round and goes after at most one of
// the first tenant's. With a single tenant ("" when the gateway has no API
// keys) every waiter gets a later round than those before it: plain
// arrival order.
//
// Rounds are tracked per model and kind, since each kind has its own
// slots; a waiter that leaves without being placed (deadline, cancel)
// only moves its tenant's later requests ahead.

// roundKind indexes Gateway.rounds by a request's kind.
func roundKind(background bool) int {
	if background {
		return 1
	}
	return 0
}

// roundLocked returns the round a new waiter of tenant and kind joins in
// model's queue.
func (g *Gateway) roundLocked(model, tenant string, background bool) int64 {
	var r int64 // the current round
	if rs := g.rounds[model]; rs != nil {
		r = rs[roundKind(background)]
	}
	for _, x := range g.queues[model] {
		if x.background == background && x.tenant == tenant && x.round >= r {
			r = x.round + 1
		}
	}
	return r
}

// passRoundLocked notes that wt, one of model's waiters, is being placed:
// its round is the current one now.
func (g *Gateway) passRoundLocked(model string, wt *waiter) {
	rs := g.rounds[model]
	if rs == nil {
		rs = new([2]int64)
		g.rounds[model] = rs
	}
	if k := roundKind(wt.background); wt.round > rs[k] {
		rs[k] = wt.round
	}
}

// aheadLocked counts the slots needed by model's waiters of the kind that
// rank ahead of a new request of tenant (one each, or one per choice): of an earlier round, or of its round and queued
// before it. wt is the request's waiter; nil before it queues, when it
// would join the queue's end in the round roundLocked gives.
func (g *Gateway) aheadLocked(model string, wt *waiter, tenant string, background bool) int {
	q := g.queues[model]
	if len(q) == 0 || (len(q) == 1 && q[0] == wt) {
		return 0
	}
	var round int64
	if wt != nil {
		round = wt.round
	} else {
		round = g.roundLocked(model, tenant, background)
	}
	ahead, before := 0, true
	for _, x := range q {
		switch {
		case x == wt:
			before = false
		case x.background != background:
		case x.round < round, before && x.round == round:
			ahead += max(x.slots, 1)
		}
	}
	return ahead
}
