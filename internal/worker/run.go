package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
	"courier/internal/toolcall"
)

// run generates req, sends its token chunks and returns the final chunk
// for the caller to send once the slot is free (nil when cancelled: nothing
// more is sent). It is the body of one slot.
func (w *Worker) run(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk {
	seq := max(req.ResumeSeq, 1)
	fail := func(code, msg string) *bus.Chunk {
		return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Error: &bus.Error{Code: code, Message: msg}}
	}
	switch req.Kind {
	case bus.KindClassification:
		return w.classify(ctx, req, send)
	case bus.KindEmbedding:
		return w.embed(ctx, req, send)
	case bus.KindCompletion, bus.KindChat, "": // "": a completion, as before kinds were checked
	default:
		return fail(bus.CodeInvalidRequest, fmt.Sprintf("unknown request kind %q", req.Kind))
	}
	if req.Choices > 1 && len(req.ResumeChoices) != 0 && len(req.ResumeChoices) != req.Choices {
		return fail(bus.CodeInvalidRequest, fmt.Sprintf("resume_choices has %d entries for %d choices", len(req.ResumeChoices), req.Choices))
	}
	prompt, err := w.prompt(req)
	if err != nil {
		return fail(bus.CodeInvalidRequest, err.Error())
	}
	gen := generation{req: req, prompt: prompt, resume: req.Resume, maxTokens: req.MaxTokens}
	if len(gen.resume) == 0 && req.ResumeText != "" && req.Choices <= 1 {
		// Text delivered by a worker without token ids (an upstream
		// engine): tokenize prompt and text together and resume after the
		// part they share with the prompt alone. Trailing whitespace is
		// held back, as upstream.Backend does: tokenizers that lead words
		// with a space would read it as a token of its own.
		text := strings.TrimRightFunc(req.ResumeText, unicode.IsSpace)
		gen.skip = req.ResumeText[len(text):]
		if gen.prompt, gen.resume, err = w.textResume(req, text, prompt); err != nil {
			return fail(bus.CodeInvalidRequest, err.Error())
		}
		if gen.maxTokens > 0 {
			// MaxTokens counts the tokens delivered (one per chunk), the
			// engine the resumed ids (and the held-back whitespace again).
			gen.maxTokens = max(gen.maxTokens-int(max(req.ResumeSeq, 1)-1), 0) + len(gen.resume)
			if gen.skip != "" {
				gen.maxTokens++
			}
		}
	}
	if req.Echo && seq == 1 {
		// One chunk echoes the prompt, for every choice of a request of
		// several.
		c, err := w.echo(ctx, req, prompt)
		if err != nil {
			return w.engineFailure(ctx, req, seq, err)
		}
		send(c)
		seq++
	}
	out := &chunkOut{seq: seq, send: send}
	if req.Echo && req.MaxTokens == 0 { // the prompt alone (scoring it)
		return out.finishAll(req, func(int) *bus.Chunk {
			return &bus.Chunk{ID: req.ID, Attempt: req.Attempt, FinishReason: engine.FinishLength,
				Usage: &bus.Usage{PromptTokens: len(prompt)}}
		})
	}
	if req.Constraint != nil {
		if gen.g, err = w.grammars.compile(req.Constraint); err != nil {
			return fail(bus.CodeInvalidRequest, err.Error())
		}
	}
	if gen.tm = w.newToolMode(req); gen.tm != nil && gen.tm.forced {
		if gen.g, err = w.toolGrammar(gen.tm, req.ParallelToolCalls); err != nil {
			return fail(bus.CodeInvalidRequest, err.Error())
		}
	}
	gen.remote = w.emitsAtTail(&gen)
	if req.Choices > 1 {
		return w.runChoices(ctx, &gen, out)
	}
	final, err := w.generate(ctx, &gen, 0, gen.resume, out)
	if err != nil {
		if gen.remote {
			// The last stage emitted the chunks: it ended the stream
			// itself on non-finite logits, and a request given back
			// resumes after what the gateway received, which is at most
			// one chunk past the tokens this stage heard of (a sequence
			// has one step in flight).
			if errors.Is(err, engine.ErrNonFinite) {
				return nil
			}
			return w.engineFailure(ctx, req, out.seq+1, err)
		}
		return w.engineFailure(ctx, req, out.seq, err)
	}
	if final == nil { // the last stage sent it
		return nil
	}
	final.Seq = out.seq
	return final
}

// tailEmitter is the optional capability of engines whose pipeline's last
// stage can emit a generation's chunks (engine.Request.Out).
type tailEmitter interface {
	TailEmits() bool
}

var _ tailEmitter = (*engine.Engine)(nil)

// emitsAtTail reports whether the last stage of the engine's pipeline
// emits gen's chunks: a completion or chat (of one choice or several),
// constrained or not (the last stage compiles the grammar from its
// source), offering tools or not (it reads the calls as toolcall.Stream
// does here), resumed or not (after token ids, or after text: the worker
// re-tokenizes the text here and the last stage skips the whitespace
// held back, gen.skip, up to a stage message string's 1024 bytes), whose
// gateway reads version-3 frames.
func (w *Worker) emitsAtTail(gen *generation) bool {
	te, ok := w.eng.(tailEmitter)
	req := gen.req
	return ok && te.TailEmits() && (gen.g == nil || gen.g.Source() != nil) && len(gen.skip) <= 1024 &&
		req.ChunkFrames >= 3 && req.ReplyTo != ""
}

// stepState is what generate's emit callback keeps from token to token.
type stepState struct {
	c    bus.Chunk
	tok  [1]int32
	lps  [1]bus.TokenLogprob
	skip string // text the client has that the engine will write again
	held bool   // the last chunk sent was marked More
}

// stepStates holds stepState structs between generations.
var stepStates = sync.Pool{New: func() any { return new(stepState) }}

// generation is what every choice of one request shares: the request, its
// tokenized prompt and compiled constraint.
type generation struct {
	req       *bus.Request
	prompt    []int32
	resume    []int32 // a single choice's tokens delivered (Request.Resume, or from ResumeText)
	maxTokens int
	skip      string // text the client has that the engine will write again
	g         *grammar.Grammar
	tm        *toolMode
	// remote: the pipeline's last stage emits the chunks (emitsAtTail),
	// every choice's.
	remote bool
}

// chunkOut numbers one request's chunks and sends them. The choices of a
// request of several share it, each from its own goroutine: a chunk is
// numbered and sent under mu, so chunks leave in Seq order.
type chunkOut struct {
	mu     sync.Mutex
	seq    uint64 // guarded by mu; the next chunk's Seq
	send   func(*bus.Chunk)
	failed bool // guarded by mu; a choice failed: nothing more is sent
}

// put numbers c and sends it; false once the request failed.
func (o *chunkOut) put(c *bus.Chunk) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failed {
		return false
	}
	c.Seq = o.seq
	o.seq++
	o.send(c)
	return true
}

// skip numbers a chunk someone else sent (a pipeline's last stage).
func (o *chunkOut) skip() {
	o.mu.Lock()
	o.seq++
	o.mu.Unlock()
}

// next returns the next chunk's Seq.
func (o *chunkOut) next() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seq
}

// flush publishes what the transport holds (bus.Chunk.More).
func (o *chunkOut) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.failed {
		o.send(nil)
	}
}

// fail stops every later put and returns the Seq the error chunk takes.
func (o *chunkOut) fail() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed = true
	return o.seq
}

// finishAll sends the final chunk of every choice of a request (finish(j)
// makes choice j's) and returns the last, for the caller to send.
func (o *chunkOut) finishAll(req *bus.Request, finish func(choice int) *bus.Chunk) *bus.Chunk {
	var last *bus.Chunk
	for j := range max(req.Choices, 1) {
		if j < len(req.ResumeChoices) && req.ResumeChoices[j].Done {
			continue
		}
		if last != nil {
			o.put(last)
		}
		last = finish(j)
		last.Choice = j
	}
	if last == nil {
		return nil
	}
	o.mu.Lock()
	last.Seq = o.seq
	o.mu.Unlock()
	return last
}

// runChoices runs the unfinished choices of a request of several, each a
// sequence of its own forked from the prompt the first evaluates
// (engine.Request.Share), and returns the request's final chunk: the last
// choice's end, or the first error (the other choices are then stopped).
func (w *Worker) runChoices(ctx context.Context, gen *generation, out *chunkOut) *bus.Chunk {
	req := gen.req
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		left   int        // guarded by mu; choices still running
		last   *bus.Chunk // guarded by mu; the final chunk of the choice that ended last
		errSeq uint64     // guarded by mu
		first  error      // guarded by mu; the first choice's failure
		wg     sync.WaitGroup
	)
	todo := make([]int, 0, req.Choices)
	for j := range req.Choices {
		if len(req.ResumeChoices) == 0 || !req.ResumeChoices[j].Done {
			todo = append(todo, j)
		}
	}
	if len(todo) == 0 {
		return &bus.Chunk{ID: req.ID, Seq: out.seq, Attempt: req.Attempt,
			Error: &bus.Error{Code: bus.CodeInvalidRequest, Message: "resume_choices: every choice is done"}}
	}
	left = len(todo)
	for _, j := range todo {
		var resume []int32
		if len(req.ResumeChoices) > 0 {
			resume = req.ResumeChoices[j].Tokens
		}
		wg.Go(func() {
			final, err := w.generate(cctx, gen, j, resume, out)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && cctx.Err() == nil {
				if left--; left > 0 {
					if final == nil {
						out.skip() // the last stage sent the choice's end
					} else {
						out.put(final) // a choice's end; the others go on
					}
				} else {
					last = final
				}
				return
			}
			if first == nil {
				first, errSeq = cmp.Or(err, cctx.Err()), out.fail()
				cancel()
			}
		})
	}
	wg.Wait()
	if first != nil {
		if gen.remote {
			// The last stage emitted the chunks: as for one choice, it
			// ended the request itself on non-finite logits, and a give-
			// back is numbered past what it may have sent unheard of
			// here — each running choice's step in flight (a token and
			// its final chunk, or a held-back tail and the final chunk)
			// and a finished choice's held-back tail.
			if errors.Is(first, engine.ErrNonFinite) {
				return nil
			}
			return w.engineFailure(ctx, req, errSeq+3*uint64(len(todo)), first)
		}
		return w.engineFailure(ctx, req, errSeq, first)
	}
	if last == nil { // the last stage sent it
		return nil
	}
	out.mu.Lock()
	last.Seq = out.seq
	out.mu.Unlock()
	return last
}

// generate runs choice j of gen (resumed after the tokens resume), sending
// a chunk per token through out, and returns its final chunk without a
// Seq, or the engine's error.
func (w *Worker) generate(ctx context.Context, gen *generation, j int, resume []int32, out *chunkOut) (*bus.Chunk, error) {
	req := gen.req
	var ts *toolcall.Stream
	callID := req.ID
	if req.Choices > 1 {
		callID = fmt.Sprintf("%s-%d", req.ID, j) // as when each choice was a request of its own
	}
	if gen.tm != nil && !gen.remote {
		ts = newToolStream(gen.tm, callID)
		// Replay what the client has: the text the engine released for
		// the resumed tokens (as the engine rebuilds it), so the reader
		// stands where the earlier attempt left it.
		text := sampler.NewTextStream(req.Stop)
		for _, id := range resume {
			rel, _ := text.Push([]byte(w.eng.TokenText(id)))
			ts.Feed(string(rel))
		}
	}
	er := engine.Request{
		Grammar:     gen.g,
		Prompt:      gen.prompt,
		Resume:      resume,
		MaxTokens:   gen.maxTokens,
		Sampling:    Sampling(req.Sampling),
		Stop:        req.Stop,
		Logprobs:    req.Logprobs,
		TopLogprobs: req.TopLogprobs,
		IgnoreEOS:   req.Sampling.IgnoreEOS,
		Background:  req.Background,
		Share:       req.Share,
	}
	if req.Choices > 1 {
		// Choice j's own stream: seed+j, as the gateway gave each choice
		// when it sent them as requests of their own.
		if er.Share = req.ID; req.Sampling.Seed != nil {
			er.Sampling.Seed += uint64(j)
		}
	}
	if gen.remote {
		er.Out = &engine.StreamOut{Subject: req.ReplyTo, ID: req.ID, Worker: w.cfg.ID, Attempt: req.Attempt,
			Seq: out.next(), Frames: min(req.ChunkFrames, bus.FrameVersion)}
		if req.Choices > 1 {
			er.Out.Choice = j
		}
		if gen.tm != nil {
			er.Out.Tools = &engine.ToolsOut{Format: gen.tm.format.Name, Names: gen.tm.names(), CallID: callID}
		}
		er.Out.Skip = gen.skip
		// The tokens are the last stage's to send; each one heard of here
		// stands for a chunk sent (for the Seq a give-back takes).
		_, err := w.eng.Generate(ctx, er, func(engine.Token) error {
			out.skip()
			return nil
		})
		return nil, err
	}
	// One chunk, its token and its logprobs are reused for every step:
	// send does not keep them (bus.Chunk.More, natsbus.Handler), so the
	// per-token path allocates nothing. They live in one struct: the
	// callback's captured variables would each be allocated on their own.
	// The struct is pooled: Generate calls emit from its own goroutine and
	// not after it returns, and st is cleared before it goes back.
	st := stepStates.Get().(*stepState)
	st.skip = gen.skip
	defer func() {
		*st = stepState{}
		stepStates.Put(st)
	}()
	res, err := w.eng.Generate(ctx, er, func(t engine.Token) error {
		// A token with another behind it, or the answer's last (its final
		// chunk follows at once), may wait for what follows: the
		// transport sends them in one message.
		more := t.More || t.Last
		text := bus.AliasString(t.Text) // valid during the callback, as send needs it
		if st.skip != "" && text != "" {
			if text, st.skip = bus.SkipDelivered(text, st.skip); text == "" {
				return release(out, &st.held, more) // the held-back whitespace, already delivered
			}
		}
		st.tok[0] = t.ID
		st.c = bus.Chunk{ID: req.ID, Choice: j, Attempt: req.Attempt, Text: text, Tokens: st.tok[:], More: more}
		if ts != nil {
			// Content and call pieces as far as they are known; the chunk
			// carries the token for usage and resume even when the text
			// is still held back.
			content, deltas := ts.Feed(text) // valid until the next feed: send keeps nothing
			st.c.Text, st.c.ToolCalls = content, deltas
			if t.ID < 0 && st.c.Text == "" && len(st.c.ToolCalls) == 0 {
				return release(out, &st.held, more)
			}
		}
		if (req.Logprobs || req.TopLogprobs > 0) && t.ID >= 0 {
			// The held-back tail (ID -1) is text, not a token: it has no
			// log-probability, so the entries stay one per completion
			// token, as the last stage of a pipeline sends them.
			w.logprob(&st.lps[0], t)
			st.c.Logprobs = st.lps[:]
		}
		st.held = more
		if !out.put(&st.c) {
			return errChoiceStopped
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	final := &bus.Chunk{
		ID: req.ID, Choice: j, Attempt: req.Attempt, FinishReason: res.FinishReason,
		Usage: &bus.Usage{PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens},
	}
	if ts != nil {
		// Text still held back is the answer when it was no call.
		content, calls := ts.Finish()
		final.Text = content
		if calls > 0 && res.FinishReason == engine.FinishStop {
			final.FinishReason = "tool_calls"
		}
	}
	return final, nil
}

// errChoiceStopped stops a choice whose request failed in another choice.
var errChoiceStopped = errors.New("worker: another choice of the request failed")

// engineFailure is the final chunk of a request the engine failed (nil
// when it was cancelled: nothing more is sent).
func (w *Worker) engineFailure(ctx context.Context, req *bus.Request, seq uint64, err error) *bus.Chunk {
	fail := func(code, msg string) *bus.Chunk {
		return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Error: &bus.Error{Code: code, Message: msg}}
	}
	switch {
	case ctx.Err() != nil:
		// Cancelled by the client, or stopped by a forced drain: no final
		// chunk; a gateway still waiting re-dispatches.
		return nil
	case errors.Is(err, engine.ErrUnavailable):
		// A pipeline lost a stage: the gateway places the request again
		// after what was delivered.
		w.log.Warn("generation given back", "id", req.ID, "err", err)
		return fail(bus.CodeUnavailable, err.Error())
	case errors.Is(err, engine.ErrContextLength):
		return fail(bus.CodePromptTooLong, err.Error())
	case errors.Is(err, engine.ErrInvalidRequest), errors.Is(err, sampler.ErrInvalidParams):
		return fail(bus.CodeInvalidRequest, err.Error())
	case errors.Is(err, engine.ErrNonFinite):
		w.log.Error("generation failed: the model produced non-finite logits", "id", req.ID, "err", err)
		return fail(bus.CodeNonFinite, err.Error())
	default:
		w.log.Error("generation failed", "id", req.ID, "err", err)
		return fail(bus.CodeInternal, err.Error())
	}
}

// PromptScorer is the optional capability of engines that report a
// prompt's own log-probabilities (echo with logprobs).
type PromptScorer interface {
	PromptLogprobs(ctx context.Context, prompt []int32, top int) ([]engine.PromptLogprob, error)
}

var _ PromptScorer = (*engine.Engine)(nil)

// echo returns the chunk that echoes req's prompt: its text as the client
// sent it (token ids: their text), with each token's log-probability when
// logprobs are asked (the first token has none).
func (w *Worker) echo(ctx context.Context, req *bus.Request, prompt []int32) (*bus.Chunk, error) {
	c := &bus.Chunk{ID: req.ID, Seq: 1, Attempt: req.Attempt, Echo: true, Text: req.Prompt}
	if len(req.PromptIDs) > 0 {
		var b strings.Builder
		for _, id := range prompt {
			b.WriteString(w.eng.TokenText(id))
		}
		c.Text = b.String()
	}
	if !req.Logprobs && req.TopLogprobs == 0 {
		return c, nil
	}
	ps, ok := w.eng.(PromptScorer)
	if !ok {
		return nil, fmt.Errorf("%w: this worker's engine cannot score prompts (echo with logprobs)", engine.ErrInvalidRequest)
	}
	lps, err := ps.PromptLogprobs(ctx, prompt, req.TopLogprobs)
	if err != nil {
		return nil, err
	}
	c.Logprobs = make([]bus.TokenLogprob, len(prompt))
	c.Logprobs[0] = bus.TokenLogprob{Token: w.eng.TokenText(prompt[0]), ID: prompt[0], None: true}
	for i, lp := range lps {
		id := prompt[i+1]
		t := bus.TokenLogprob{Token: w.eng.TokenText(id), ID: id, Logprob: lp.Logprob}
		for _, a := range lp.Top {
			t.Top = append(t.Top, bus.TokenLogprob{Token: a.Text, ID: a.ID, Logprob: a.Logprob})
		}
		c.Logprobs[i+1] = t
	}
	return c, nil
}

// logprob fills lp with t's logprob and alternatives, reusing lp.Top.
func (w *Worker) logprob(lp *bus.TokenLogprob, t engine.Token) {
	top := lp.Top[:0]
	for _, a := range t.Top {
		top = append(top, bus.TokenLogprob{Token: a.Text, ID: a.ID, Logprob: a.Logprob})
	}
	if len(top) == 0 {
		top = nil
	}
	*lp = bus.TokenLogprob{Token: w.eng.TokenText(t.ID), ID: t.ID, Logprob: t.Logprob, Top: top}
}

// release is a step that sends nothing: when no token waits behind it,
// whatever the last chunk's More let the transport hold goes out now.
func release(out *chunkOut, held *bool, more bool) error {
	if *held && !more {
		*held = false
		out.flush()
	}
	return nil
}

// textResume returns the prompt and resume ids of a request resumed after
// text (req.ResumeText without ids, less its trailing whitespace): the
// tokens of the prompt with the text appended (a chat's as its assistant message's continuation), split
// where they stop matching prompt's.
func (w *Worker) textResume(req *bus.Request, text string, prompt []int32) ([]int32, []int32, error) {
	r := *req
	if r.Kind == bus.KindChat {
		r.Messages = ContinueWith(r.Messages, r.ContinueFinal, text)
		r.ContinueFinal = true
	} else {
		r.Prompt += text
	}
	full, err := w.prompt(&r)
	if err != nil {
		return nil, nil, err
	}
	k := 0
	for k < len(prompt) && k < len(full) && prompt[k] == full[k] {
		k++
	}
	if k == 0 {
		k = min(1, len(full))
	}
	return full[:k], full[k:], nil
}

// ContinueWith returns msgs with text appended to the assistant's final
// message: to the last message when cont (it continues that one), else as
// a new assistant message.
func ContinueWith(msgs []bus.ChatMessage, cont bool, text string) []bus.ChatMessage {
	out := slices.Clone(msgs)
	if cont && len(out) > 0 {
		out[len(out)-1].Content += text
		return out
	}
	return append(out, bus.ChatMessage{Role: "assistant", Content: text})
}

// continueMark stands for the final message's content while a chat that
// continues it is rendered: the prompt is cut where the mark lands.
const continueMark = "\x00courier:continue\x00"

// renderContinuing renders msgs so that the prompt ends with the last
// message's content (an assistant prefix the model continues), as vLLM's
// continue_final_message does.
func (w *Worker) renderContinuing(msgs []bus.ChatMessage, kwargs map[string]any) (string, error) {
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != "assistant" {
		return "", errors.New("continue_final_message needs the last message to be the assistant's")
	}
	m := slices.Clone(msgs)
	content := m[len(m)-1].Content
	m[len(m)-1].Content = continueMark
	text, err := w.cfg.Render(w.info.ChatTemplate, m, w.info.BOSText, w.info.EOSText, kwargs)
	if err != nil {
		return "", err
	}
	i := strings.LastIndex(text, continueMark)
	if i < 0 {
		return "", errors.New("continue_final_message: the chat template does not keep the final message's content as written")
	}
	// The message continued is usually text the model wrote after the
	// generation prompt (a resumed answer), with whatever leading space
	// it chose; a template that puts a space between the role and the
	// content (the plain fallback's "Assistant: ") would add one the model
	// never saw. Continue from the generation prompt itself when it
	// differs from the template's prefix only by whitespace, so the prompt
	// is what the model saw. (Real templates open the assistant's message
	// exactly as their generation prompt does; there the two agree.)
	prefix := text[:i]
	gen, err := w.cfg.Render(w.info.ChatTemplate, msgs[:len(msgs)-1], w.info.BOSText, w.info.EOSText, kwargs)
	if err == nil && strings.HasPrefix(prefix, gen) && strings.TrimSpace(prefix[len(gen):]) == "" {
		prefix = gen
	}
	return prefix + content, nil
}

// prompt renders and tokenizes req. Special-token text is recognised only
// in a rendered chat (the template writes it); a completion prompt is plain
// text, as `courier run` reads it. BOS is added as the model asks, unless
// the rendered chat already starts with it.
func (w *Worker) prompt(req *bus.Request) ([]int32, error) {
	if len(req.PromptIDs) > 0 && req.Kind != bus.KindChat {
		// Token ids as given (no BOS added); the engine checks the range.
		return append([]int32(nil), req.PromptIDs...), nil
	}
	text := req.Prompt
	addSpecial, parseSpecial := true, false
	if req.Kind == bus.KindChat {
		parseSpecial = true
		var err error
		if req.ContinueFinal {
			text, err = w.renderContinuing(req.Messages, req.ChatTemplateKwargs)
		} else {
			text, err = w.cfg.Render(w.info.ChatTemplate, req.Messages, w.info.BOSText, w.info.EOSText, withTools(req))
		}
		if err != nil {
			return nil, err
		}
		if w.info.BOSText != "" && strings.HasPrefix(text, w.info.BOSText) {
			addSpecial = false
		}
	}
	return w.eng.Tokenize(text, addSpecial, parseSpecial)
}

// Sampling converts the bus's sampling parameters into the engine's, with
// OpenAI's defaults for what the request leaves out (temperature 1, top_p
// 1, random seed).
func Sampling(s bus.Sampling) sampler.Params {
	p := sampler.Params{
		Temperature:      1,
		TopK:             s.TopK,
		MinP:             s.MinP,
		RepeatPenalty:    s.RepetitionPenalty,
		FrequencyPenalty: s.FrequencyPenalty,
		PresencePenalty:  s.PresencePenalty,
	}
	if s.Temperature != nil {
		p.Temperature = *s.Temperature
	}
	if s.TopP != nil {
		p.TopP = *s.TopP
	}
	if s.Seed != nil {
		p.Seed, p.ExplicitSeed = *s.Seed, true
	}
	if len(s.LogitBias) > 0 {
		p.LogitBias = make([]sampler.Bias, 0, len(s.LogitBias))
		for id, v := range s.LogitBias {
			p.LogitBias = append(p.LogitBias, sampler.Bias{ID: id, Value: v})
		}
		// Map order is random; a fixed order keeps the request's state
		// the same on every attempt.
		slices.SortFunc(p.LogitBias, func(a, b sampler.Bias) int { return cmp.Compare(a.ID, b.ID) })
	}
	return p
}

// PlainChat is the fallback chat rendering for models without a template:
// one "role: content" line per message, then "assistant:".
func PlainChat(_ string, msgs []bus.ChatMessage, _, _ string, _ map[string]any) (string, error) {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	b.WriteString("assistant:")
	return b.String(), nil
}
