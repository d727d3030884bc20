package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// runner takes queued lines whenever Capacity reports room and runs each on
// an owned goroutine, at most Config.Concurrency at once.
type runner struct {
	m    *Manager
	exec Executor
	cap  Capacity
	sem  chan struct{} // one token per running line
	done chan struct{} // capacity 1: a line finished
}

func (r *runner) run() {
	defer r.m.wg.Done()
	ctx := r.m.stop
	for ctx.Err() == nil {
		room := min(r.cap.Room(), cap(r.sem)-len(r.sem))
		if room <= 0 {
			r.pause(ctx, 5*time.Millisecond)
			continue
		}
		ds, err := r.m.st.Queue.Fetch(ctx, room, 100*time.Millisecond)
		if err != nil {
			if ctx.Err() == nil {
				r.m.log.Warn("fetch batch lines", "err", err)
				r.pause(ctx, 200*time.Millisecond)
			}
			continue
		}
		if !r.m.addLines(len(ds)) {
			for _, d := range ds {
				_ = d.Nak(0) // closing: another runner takes it
			}
			return
		}
		for _, d := range ds {
			r.sem <- struct{}{}
			go r.handle(d)
		}
		if len(ds) > 0 {
			// Let the dispatches just started register as held slots
			// before Room is asked again.
			r.pause(ctx, 2*time.Millisecond)
		}
	}
}

// pause waits for d, a finished line, or the end.
func (r *runner) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.done:
	}
}

func (r *runner) handle(d Delivery) {
	defer func() {
		<-r.sem
		select {
		case r.done <- struct{}{}:
		default:
		}
		r.m.running.Add(-1)
		r.m.lines.Done()
		r.m.wg.Done()
	}()
	var msg lineMsg
	if err := json.Unmarshal(d.Data(), &msg); err != nil {
		r.m.log.Warn("dropping a malformed queue message", "err", err)
		_ = d.Ack(r.m.ctx)
		return
	}
	if msg.Job != "" {
		r.runJob(d, &msg)
	} else {
		r.runLine(d, &msg)
	}
}

// execute runs msg, extending d's ack deadline meanwhile. ok is false when
// the line must run again later (shutdown, or a retryable status with
// attempts left); d has then been nak'ed.
func (r *runner) execute(d Delivery, msg *lineMsg) (status int, reqID string, body []byte, ok bool) {
	ctx := r.m.ctx
	stop := make(chan struct{})
	alive := make(chan struct{})
	go func() {
		defer close(alive)
		t := time.NewTicker(r.m.cfg.KeepAlive)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = d.InProgress()
			}
		}
	}()
	wctx := ContextWithWork(ContextWithOwner(ctx, msg.Owner), Work{Batch: msg.Batch, CustomID: msg.CustomID, Job: msg.Job})
	status, reqID, body = r.exec.Execute(wctx, msg.URL, msg.Body)
	close(stop)
	<-alive
	if ctx.Err() != nil {
		_ = d.Nak(0)
		return 0, "", nil, false
	}
	if retryable(status) && d.Attempt() < r.m.cfg.MaxAttempts {
		_ = d.Nak(backoff(d.Attempt()))
		return 0, "", nil, false
	}
	return status, reqID, body, true
}

func retryable(status int) bool {
	switch status {
	case 429, 502, 503, 504:
		return true
	}
	return false
}

// backoff is the wait before attempt+1: 0.5 s doubling up to 8 s.
func backoff(attempt int) time.Duration {
	return min(500*time.Millisecond<<min(attempt-1, 4), 8*time.Second)
}

func (r *runner) runLine(d Delivery, msg *lineMsg) {
	ctx := r.m.ctx
	switch r.m.batchStatus(ctx, msg.Batch) {
	case StatusFinalizing, StatusCancelling, StatusCancelled, StatusFailed, StatusExpired, StatusCompleted:
		// Its file is (being) written without it: a finalizing batch has
		// an answer for every line, or its window expired.
		_ = d.Ack(ctx)
		return
	}
	if d.Attempt() > 1 {
		if _, _, err := r.m.st.Results.Get(ctx, resultKey(msg.Batch, msg.Index)); err == nil {
			_ = d.Ack(ctx) // answered before a crash lost the ack
			return
		}
	}
	status, reqID, body, ok := r.execute(d, msg)
	if !ok {
		return
	}
	l := &OutputLine{CustomID: msg.CustomID, Response: &LineResponse{StatusCode: status, RequestID: reqID, Body: jsonOrString(body)}}
	if _, err := r.m.storeResult(ctx, msg.Batch, msg.Index, l); err != nil {
		r.m.log.Warn("store line result", "batch", msg.Batch, "line", msg.Index, "err", err)
		_ = d.Nak(time.Second)
		return
	}
	if err := d.Ack(ctx); err != nil && ctx.Err() == nil {
		r.m.log.Debug("ack line", "batch", msg.Batch, "line", msg.Index, "err", err)
	}
}

func (r *runner) runJob(d Delivery, msg *lineMsg) {
	ctx := r.m.ctx
	rec, err := r.m.updateJob(ctx, msg.Job, func(j *jobRecord) bool {
		if j.Status != JobQueued {
			return false
		}
		j.Status, j.StartedAt = JobInProgress, r.m.now().Unix()
		return true
	})
	if errors.Is(err, ErrNotFound) || (err == nil && (rec.Status == JobCompleted || rec.Status == JobFailed)) {
		_ = d.Ack(ctx)
		return
	}
	if err != nil {
		_ = d.Nak(time.Second)
		return
	}
	status, reqID, body, ok := r.execute(d, msg)
	if !ok {
		return
	}
	if err := r.m.finishJob(ctx, msg.Job, &JobResponse{StatusCode: status, RequestID: reqID, Body: jsonOrString(body)}); err != nil {
		r.m.log.Warn("store job result", "job", msg.Job, "err", err)
		_ = d.Nak(time.Second)
		return
	}
	_ = d.Ack(ctx)
}

// jsonOrString keeps a JSON body as it is and wraps anything else as a
// JSON string.
func jsonOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}
