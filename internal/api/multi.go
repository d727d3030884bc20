package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"courier/internal/bus"
	"courier/internal/metrics"
)

// maxChoices bounds the choices of one request: n times the prompts.
const maxChoices = bus.MaxChoices

// expandChoices turns one validated request into one bus request per
// prompt, each carrying the prompt's n choices (bus.Request.Choices, when
// n > 1): the worker evaluates the prompt once and forks it n ways, choice
// j sampling with seed+j, so a prompt array gives each prompt the answer
// it gets alone and n samples differ from each other but repeat run to
// run.
func expandChoices(req *bus.Request, prompts []string, promptIDs [][]int32, n int) []*bus.Request {
	np := max(len(prompts), len(promptIDs), 1)
	out := make([]*bus.Request, 0, np)
	for p := range np {
		r := *req
		if len(prompts) > 0 {
			r.Prompt = prompts[p]
		}
		if len(promptIDs) > 0 {
			r.PromptIDs = promptIDs[p]
		}
		if n > 1 {
			r.Choices = n
		}
		out = append(out, &r)
	}
	return out
}

// splitChoices returns the choices of r as requests of one choice each,
// for a fleet whose workers do not run several as one
// (bus.ErrChoicesUnsupported): choice j is r.ID-j and samples with seed+j,
// as it would in r. They share one Share name, so those that land on one
// worker still evaluate the prompt once.
func splitChoices(r *bus.Request) []*bus.Request {
	out := make([]*bus.Request, r.Choices)
	for j := range out {
		c := *r
		c.Choices = 0
		c.ID = fmt.Sprintf("%s-%d", r.ID, j)
		if r.Sampling.Seed != nil {
			seed := *r.Sampling.Seed + uint64(j)
			c.Sampling.Seed = &seed
		}
		out[j] = &c
	}
	return out
}

// choiceStream is one choice's rendering and progress.
type choiceStream struct {
	req *bus.Request // the bus request that carries it
	f   format
	res *result
}

// dispatched is one bus request of an answer of several choices and the
// choices it carries: cs[base] to cs[base+n-1] (its Chunk.Choice 0..n-1).
type dispatched struct {
	req     *bus.Request
	st      bus.Stream
	base, n int
	first   *bus.Chunk
	attempt int // the highest attempt relayed so far (read by the merging loop only)
}

// choicesOf returns the choices chunk c of u is for: its Chunk.Choice, or
// every choice for the echo of a request of several (one chunk echoes the
// prompt for all).
func (u *dispatched) choicesOf(c *bus.Chunk) ([]int, error) {
	if c.Echo && u.n > 1 {
		all := make([]int, u.n)
		for j := range all {
			all[j] = u.base + j
		}
		return all, nil
	}
	if c.Choice < 0 || c.Choice >= u.n {
		return nil, fmt.Errorf("%w: a chunk of choice %d of a request of %d", bus.ErrWorkerLost, c.Choice, u.n)
	}
	return []int{u.base + c.Choice}, nil
}

type choiceChunk struct {
	u   *dispatched
	c   *bus.Chunk
	err error
}

// generateMulti answers a request of several choices (n > 1, best_of,
// prompt arrays): one bus request per prompt carrying its choices, which
// one worker runs as sequences forked from one evaluated prompt, their
// chunks tagged by choice and merged here by index (streamed: interleaved
// as they come, as OpenAI does). Where no worker of the model runs several
// choices as one request (bus.ErrChoicesUnsupported), each choice goes as
// a request of its own, placed, resumed and cancelled like a single one.
// pick, when set (best_of), chooses the choices a non-streamed answer
// returns; usage counts them all.
func (s *server) generateMulti(w http.ResponseWriter, r *http.Request, reqs []*bus.Request, newFormat func(index int) format, pick func([]*choiceStream) []*choiceStream) {
	start := s.now()
	model := reqs[0].Model
	if i := infoOf(r); i != nil {
		i.model = model // logged even when the request fails here
	}
	if e := s.checkModel(model); e != nil {
		s.fail(w, e)
		return
	}
	id := s.busID(r)
	bg, _ := r.Context().Value(backgroundKey{}).(bool)
	tenant := s.tenant(r, bg)
	s.m.Inflight(model, 1)
	defer s.m.Inflight(model, -1)
	// Waiting until every choice is placed, then running (vllm: gauges).
	s.waiting(model, 1)
	waiting := true
	defer func() {
		if waiting {
			s.waiting(model, -1)
		} else {
			s.running(model, -1)
		}
	}()
	var placed time.Time
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stopCtx, release := s.stoppable(ctx) // see generate
	defer release()
	placeCtx, cancelPlace := context.WithTimeout(stopCtx, s.cfg.RequestTimeout)
	defer cancelPlace()

	var cs []*choiceStream
	for _, req := range reqs {
		for range max(req.Choices, 1) {
			cs = append(cs, &choiceStream{req: req, f: newFormat(len(cs)), res: &result{model: model, itl: s.m.InterToken(model)}})
		}
	}
	var units []*dispatched
	defer func() {
		for _, u := range units {
			u.st.Close()
		}
	}()
	defer func() {
		for _, c := range cs {
			noteResult(r, c.res, start, placed, tenant, bg)
		}
		if i := infoOf(r); i != nil && !placed.IsZero() {
			u := mergedUsage(cs, samePromptOf(cs)) // a shared prompt counts once
			i.prompt, i.completion = u.PromptTokens, u.CompletionTokens
		}
	}()
	var dispatch func(req *bus.Request, base int) error
	dispatch = func(req *bus.Request, base int) error {
		req.Share = id // split choices of one prompt on one worker evaluate it once
		req.Deadline = start.Add(s.cfg.RequestTimeout).UnixMilli()
		req.Background, req.Tenant = bg, tenant
		st, err := s.d.Dispatch(traced(r, placeCtx), req)
		if errors.Is(err, bus.ErrChoicesUnsupported) && req.Choices > 1 {
			for j, one := range splitChoices(req) {
				if err := dispatch(one, base+j); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		units = append(units, &dispatched{req: req, st: st, base: base, n: max(req.Choices, 1)})
		for j := range max(req.Choices, 1) {
			cs[base+j].req = req
		}
		return nil
	}
	base := 0
	for p, req := range reqs {
		req.ID = id
		if len(reqs) > 1 {
			req.ID = fmt.Sprintf("%s-%d", id, p)
		}
		if err := dispatch(req, base); err != nil {
			s.failBeforeCommit(w, ctx, req, placeError(placeCtx, err))
			return
		}
		base += max(req.Choices, 1)
	}
	for _, u := range units {
		first, err := s.next(placeCtx, u.st)
		if err == nil && first.Error != nil {
			err = s.workerError(model, first.Error)
		}
		if err == nil {
			_, err = u.choicesOf(first)
		}
		if err != nil {
			s.failBeforeCommit(w, ctx, u.req, placeError(placeCtx, err))
			return
		}
		u.first, u.attempt = first, first.Attempt
	}
	cancelPlace()
	placed, waiting = s.now(), false
	s.waiting(model, -1)
	s.running(model, 1)
	for _, c := range cs {
		c.f.begin(idPrefix(reqs[0].Kind)+id, model, start.Unix())
	}
	setRequestID(w, id)

	// One reader per bus request; the loop below owns the response.
	chunks := make(chan choiceChunk, len(cs))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: readers blocked in Next return
	for _, u := range units {
		ends := 0
		if u.first.Final() {
			ends++
		}
		if ends == u.n {
			continue
		}
		wg.Go(func() {
			for {
				next, err := s.next(ctx, u.st)
				if err == nil && next.Error != nil {
					err = s.workerError(model, next.Error)
				}
				// Read before it is handed over: the loop recycles it.
				end := err == nil && next.Final() && !next.Echo
				select {
				case chunks <- choiceChunk{u: u, c: next, err: err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
				if end {
					if ends++; ends == u.n {
						return
					}
				}
			}
		})
	}
	err := s.mergeChoices(ctx, w, cs, units, chunks, pick)
	if err == nil {
		u := mergedUsage(cs, samePromptOf(cs))
		s.observeGeneration(metrics.Generation{
			Model: model, TTFT: cs[0].res.firstAt.Sub(start), Total: s.now().Sub(start),
			PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
			FinishReason: cs[0].res.finish,
		})
	} else if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "generation ended early", requestIDAttr(ctx, id), slog.Any("err", err))
	}
}

// mergeChoices relays or collects the choices' chunks until every choice
// has finished: the first chunk of every bus request, then what its
// reader sends on chunks.
func (s *server) mergeChoices(ctx context.Context, w http.ResponseWriter, cs []*choiceStream, units []*dispatched, chunks <-chan choiceChunk, pick func([]*choiceStream) []*choiceStream) error {
	f0 := cs[0].f
	stream := f0.isStream()
	var sse *sseWriter
	var fr framing
	if stream {
		fr = framingOf(f0)
		h := w.Header()
		h.Set("Content-Type", fr.contentType())
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		sse = newSSEWriter(w, fr)
		defer sse.release()
	}
	left := len(cs)
	// take relays c to the choices it is for; an error ends the answer.
	take := func(u *dispatched, c *bus.Chunk) error {
		to, err := u.choicesOf(c)
		if err != nil {
			return err
		}
		if stream && c.Attempt > u.attempt && u.attempt > 0 {
			sse.resumed(c) // re-dispatched: say who carries on (docs/api.md)
		}
		u.attempt = max(u.attempt, c.Attempt)
		for _, i := range to {
			cs[i].res.note(c, s.now())
			if stream {
				sse.chunk(cs[i].f, c) // a plain token's event allocates nothing
			} else {
				cs[i].f.add(c)
			}
			if c.Final() && !cs[i].res.completed {
				cs[i].res.completed = true
				left--
			}
		}
		if r, ok := u.st.(bus.Recycler); ok {
			r.Recycle(c) // written or added (copied): the stream may reuse it
		}
		return nil
	}
	fail := func(err error) error {
		if ctx.Err() != nil {
			markStatus(w, statusClientClosed)
			return err
		}
		e := toAPIError(err)
		if errors.Is(err, errShuttingDown) {
			e = errorf(CodeShuttingDown, "", "the server is shutting down; retry the request on another gateway")
		}
		if stream {
			sse.event(fr.errorEvent(e))
			sse.done()
			sse.flush()
		} else {
			s.fail(w, e)
		}
		return err
	}
	for _, u := range units {
		if err := take(u, u.first); err != nil {
			return fail(err)
		}
	}
	for left > 0 {
		if stream {
			if err := sse.flush(); err != nil {
				return err
			}
		}
		var cc choiceChunk
		select {
		case cc = <-chunks:
		case <-ctx.Done():
			markStatus(w, statusClientClosed)
			return ctx.Err()
		case <-s.stopping.Done(): // StopStreams
			cc.err = errShuttingDown
		}
		if cc.err == nil {
			cc.err = take(cc.u, cc.c)
		}
		if cc.err != nil {
			return fail(cc.err)
		}
	}
	u := mergedUsage(cs, samePromptOf(cs))
	if stream {
		if ev := f0.usageEvent(u); ev != nil {
			sse.event(ev)
		}
		sse.done()
		return sse.flush()
	}
	if pick != nil {
		cs = pick(cs)
	}
	writeJSON(w, http.StatusOK, mergeBodies(cs, u))
	return nil
}

// pickBest keeps, of each prompt's best candidates (cs holds them in
// prompt order), the n with the highest cumulative log-probability of
// their generated tokens (earlier candidates first on ties, as a stable
// sort leaves them), renumbered as the prompt's choices.
func pickBest(cs []*choiceStream, n, best int) []*choiceStream {
	out := make([]*choiceStream, 0, len(cs)/best*n)
	for p := 0; p+best <= len(cs); p += best {
		group := slices.Clone(cs[p : p+best])
		slices.SortStableFunc(group, func(a, b *choiceStream) int {
			return cmp.Compare(b.res.cumLogprob, a.res.cumLogprob)
		})
		for k, c := range group[:n] {
			if f, ok := c.f.(*completionFormat); ok {
				f.index = p/best*n + k
			}
			out = append(out, c)
		}
	}
	return out
}

// samePromptOf reports whether every choice reads the same prompt.
func samePromptOf(cs []*choiceStream) bool {
	for _, c := range cs[1:] {
		if c.req.Prompt != cs[0].req.Prompt || fmt.Sprint(c.req.PromptIDs) != fmt.Sprint(cs[0].req.PromptIDs) {
			return false
		}
	}
	return true
}

// mergedUsage sums the choices' usage; a prompt shared by every choice is
// counted once, as OpenAI counts it.
func mergedUsage(cs []*choiceStream, samePrompt bool) Usage {
	var u Usage
	for i, c := range cs {
		cu := c.res.apiUsage()
		if i == 0 || !samePrompt {
			u.PromptTokens += cu.PromptTokens
		}
		u.CompletionTokens += cu.CompletionTokens
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// mergeBodies puts every choice's rendered choice into one response.
func mergeBodies(cs []*choiceStream, u Usage) any {
	switch b := cs[0].f.body(cs[0].res.finish, u).(type) {
	case Completion:
		for _, c := range cs[1:] {
			b.Choices = append(b.Choices, c.f.body(c.res.finish, u).(Completion).Choices...)
		}
		return b
	case ChatCompletion:
		for _, c := range cs[1:] {
			b.Choices = append(b.Choices, c.f.body(c.res.finish, u).(ChatCompletion).Choices...)
		}
		return b
	default:
		return b
	}
}
