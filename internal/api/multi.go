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
const maxChoices = 64

// expandChoices turns one validated request into one bus request per
// choice: for each prompt, n samples. With a seed, sample j of a prompt
// uses seed+j, so a prompt array gives each prompt the answer it gets
// alone and n samples differ from each other but repeat run to run.
func expandChoices(req *bus.Request, prompts []string, promptIDs [][]int32, n int) []*bus.Request {
	np := max(len(prompts), len(promptIDs), 1)
	out := make([]*bus.Request, 0, np*n)
	for p := range np {
		for j := range n {
			r := *req
			if len(prompts) > 0 {
				r.Prompt = prompts[p]
			}
			if len(promptIDs) > 0 {
				r.PromptIDs = promptIDs[p]
			}
			if req.Sampling.Seed != nil {
				seed := *req.Sampling.Seed + uint64(j)
				r.Sampling.Seed = &seed
			}
			out = append(out, &r)
		}
	}
	return out
}

// choiceStream is one choice's request, stream and rendering.
type choiceStream struct {
	req *bus.Request
	st  bus.Stream
	f   format
	res *result
}

type choiceChunk struct {
	i   int
	c   *bus.Chunk
	err error
}

// generateMulti answers a request of several choices (n > 1, prompt
// arrays): one bus request per choice, each placed, resumed and cancelled
// like a single request, their answers merged by index. All are placed at
// once; choices of one prompt carry one Share name, so those that land on
// one worker evaluate the prompt once (the engine forks it; a long prompt's
// choices follow the first by prefix affinity). pick, when set (best_of),
// chooses the choices a non-streamed answer returns; usage counts them all.
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
	s.m.Waiting(model, 1)
	waiting := true
	defer func() {
		if waiting {
			s.m.Waiting(model, -1)
		} else {
			s.running(model, -1)
		}
	}()
	var placed time.Time
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	placeCtx, cancelPlace := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancelPlace()

	cs := make([]*choiceStream, len(reqs))
	defer func() {
		for _, c := range cs {
			if c != nil && c.st != nil {
				c.st.Close()
			}
		}
	}()
	defer func() {
		for _, c := range cs {
			if c != nil {
				noteResult(r, c.res, start, placed, tenant, bg)
			}
		}
		if i := infoOf(r); i != nil && !slices.Contains(cs, nil) {
			u := mergedUsage(cs, samePromptOf(cs)) // a shared prompt counts once
			i.prompt, i.completion = u.PromptTokens, u.CompletionTokens
		}
	}()
	firsts := make([]*bus.Chunk, len(reqs))
	startOne := func(i int) error {
		req := reqs[i]
		req.ID = fmt.Sprintf("%s-%d", id, i)
		req.Share = id // choices of one prompt on one worker evaluate it once
		req.Deadline = start.Add(s.cfg.RequestTimeout).UnixMilli()
		req.Background, req.Tenant = bg, tenant
		st, err := s.d.Dispatch(traced(r, placeCtx), req)
		if err != nil {
			return err
		}
		cs[i] = &choiceStream{req: req, st: st, f: newFormat(i), res: &result{model: model, itl: s.m.InterToken(model)}}
		return nil
	}
	wait := func(i int) error {
		first, err := s.next(placeCtx, cs[i].st)
		if err == nil && first.Error != nil {
			err = s.workerError(model, first.Error)
		}
		if err == nil {
			firsts[i] = first
			cs[i].res.note(first, s.now())
		}
		return err
	}
	for i := range reqs {
		if err := startOne(i); err != nil {
			s.failBeforeCommit(w, ctx, reqs[i], err)
			return
		}
	}
	for i := range reqs {
		if err := wait(i); err != nil {
			s.failBeforeCommit(w, ctx, reqs[i], err)
			return
		}
	}
	cancelPlace()
	placed, waiting = s.now(), false
	s.m.Waiting(model, -1)
	s.running(model, 1)
	for _, c := range cs {
		c.f.begin(idPrefix(reqs[0].Kind)+id, model, start.Unix())
	}
	setRequestID(w, id)

	// One reader per unfinished choice; the loop below owns the response.
	chunks := make(chan choiceChunk, len(reqs))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: readers blocked in Next return
	for i, c := range cs {
		if firsts[i].Final() {
			continue
		}
		wg.Go(func() {
			for {
				next, err := s.next(ctx, c.st)
				if err == nil && next.Error != nil {
					err = s.workerError(model, next.Error)
				}
				select {
				case chunks <- choiceChunk{i: i, c: next, err: err}:
				case <-ctx.Done():
					return
				}
				if err != nil || next.Final() {
					return
				}
			}
		})
	}
	err := s.mergeChoices(ctx, w, cs, firsts, chunks, pick)
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
// has finished.
func (s *server) mergeChoices(ctx context.Context, w http.ResponseWriter, cs []*choiceStream, firsts []*bus.Chunk, chunks <-chan choiceChunk, pick func([]*choiceStream) []*choiceStream) error {
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
		sse = &sseWriter{w: w, rc: http.NewResponseController(w), fr: fr}
	}
	left := len(cs)
	take := func(i int, c *bus.Chunk) {
		if stream {
			for _, ev := range cs[i].f.events(c) {
				sse.event(ev)
			}
		} else {
			cs[i].f.add(c)
		}
		if c.Final() {
			cs[i].res.completed = true
			left--
		}
	}
	for i, c := range firsts {
		take(i, c)
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
		if errors.Is(cc.err, errShuttingDown) {
			e := errorf(CodeShuttingDown, "", "the server is shutting down; retry the request on another gateway")
			if stream {
				sse.event(fr.errorEvent(e))
				sse.done()
				sse.flush()
			} else {
				s.fail(w, e)
			}
			return cc.err
		}
		if cc.err != nil {
			if ctx.Err() != nil {
				markStatus(w, statusClientClosed)
				return cc.err
			}
			if stream {
				sse.event(fr.errorEvent(toAPIError(cc.err)))
				sse.done()
				sse.flush()
			} else {
				s.fail(w, toAPIError(cc.err))
			}
			return cc.err
		}
		cs[cc.i].res.note(cc.c, s.now())
		take(cc.i, cc.c)
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
