package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// storeResult stores line index of batch once and counts it; a line that
// already has a result keeps the first one. It reports whether this call
// stored it.
func (m *Manager) storeResult(ctx context.Context, batch string, index int, l *OutputLine) (bool, error) {
	l.ID = fmt.Sprintf("batch_req_%s_%d", strings.TrimPrefix(batch, "batch_"), index)
	data, err := json.Marshal(l)
	if err != nil {
		return false, fmt.Errorf("jobs: encode result: %w", err)
	}
	_, err = m.st.Results.Create(ctx, resultKey(batch, index), data)
	if errors.Is(err, ErrTooLarge) {
		l.Response = nil
		l.Error = &LineError{Code: "request_too_large", Message: "the response is too large to keep"}
		data, _ = json.Marshal(l)
		_, err = m.st.Results.Create(ctx, resultKey(batch, index), data)
	}
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jobs: store result: %w", err)
	}
	m.mu.Lock()
	w := m.active[batch]
	if w == nil {
		w = &batchWatch{changed: m.now()}
		m.active[batch] = w
	}
	if l.ok() {
		w.delta.Completed++
	} else {
		w.delta.Failed++
	}
	m.mu.Unlock()
	return true, nil
}

// results reads every result of batch, by line index.
func (m *Manager) results(ctx context.Context, batch string) (map[int]*OutputLine, error) {
	out := map[int]*OutputLine{}
	err := m.st.Results.Scan(ctx, batch+".>", func(key string, val []byte) error {
		i, err := strconv.Atoi(key[strings.LastIndexByte(key, '.')+1:])
		if err != nil {
			return nil
		}
		var l OutputLine
		if json.Unmarshal(val, &l) == nil {
			out[i] = &l
		}
		return nil
	})
	return out, err
}

// countOf counts results as request_counts do.
func countOf(res map[int]*OutputLine, total int) Counts {
	c := Counts{Total: total}
	for _, l := range res {
		if l.ok() {
			c.Completed++
		} else {
			c.Failed++
		}
	}
	return c
}

// flushCounts adds the counts of results stored here to their batch
// records.
func (m *Manager) flushCounts(ctx context.Context) {
	m.mu.Lock()
	deltas := map[string]Counts{}
	for id, w := range m.active {
		if w.delta != (Counts{}) {
			deltas[id] = w.delta
			w.delta = Counts{}
		}
	}
	m.mu.Unlock()
	for id, d := range deltas {
		_, err := m.updateBatch(ctx, id, func(r *batchRecord) bool {
			if terminal(r.Status) {
				return false
			}
			r.RequestCounts.Completed += d.Completed
			r.RequestCounts.Failed += d.Failed
			return true
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			m.mu.Lock()
			if w := m.active[id]; w != nil {
				w.delta.Completed += d.Completed
				w.delta.Failed += d.Failed
			}
			m.mu.Unlock()
		}
	}
}

// finalize writes batch id's output and error files and ends it, when every
// line has a result or the batch is being cancelled or expired. Otherwise
// it corrects the batch's counts from the results. It is idempotent.
func (m *Manager) finalize(ctx context.Context, id string) error {
	data, _, err := m.st.Batches.Get(ctx, id)
	if err != nil {
		return err
	}
	var rec batchRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("jobs: batch %s: %w", id, err)
	}
	if terminal(rec.Status) || rec.Status == StatusValidating {
		return nil
	}
	content, err := m.st.Blobs.Get(ctx, rec.InputFileID)
	if err != nil {
		return m.failBatch(ctx, id, BatchError{Code: "invalid_file", Message: "the input file is gone: " + err.Error()})
	}
	lines, fatal := parseLines(content, rec.Endpoint, m.cfg.MaxLines, nil)
	if fatal != nil {
		return m.failBatch(ctx, id, *fatal)
	}
	res, err := m.results(ctx, id)
	if err != nil {
		return err
	}
	cancelling := rec.Status == StatusCancelling
	if !cancelling && rec.ExpireMS == 0 && len(res) < len(lines) {
		return m.recount(ctx, id, countOf(res, len(lines)))
	}
	if rec.Status != StatusFinalizing && !cancelling {
		if _, err := m.updateBatch(ctx, id, func(r *batchRecord) bool {
			if r.Status != StatusInProgress {
				return false
			}
			r.Status, r.FinalizingAt = StatusFinalizing, m.now().Unix()
			return true
		}); err != nil {
			return err
		}
	}
	return m.writeFiles(ctx, &rec, lines, res)
}

// recount replaces batch id's counts with c (read from its results) and
// drops the deltas counted here meanwhile, which c already holds; results
// stored after the scan may be undercounted until the next recount, never
// overcounted.
func (m *Manager) recount(ctx context.Context, id string, c Counts) error {
	m.mu.Lock()
	if w := m.active[id]; w != nil {
		w.delta = Counts{}
		w.changed = m.now()
	}
	m.mu.Unlock()
	_, err := m.updateBatch(ctx, id, func(r *batchRecord) bool {
		if terminal(r.Status) || r.RequestCounts == c {
			return false
		}
		r.RequestCounts = c
		return true
	})
	return err
}

// Errors of the lines a batch ended without.
var (
	errCancelled = LineError{Code: "batch_cancelled", Message: "the batch was cancelled before this line ran"}
	errExpired   = LineError{Code: "batch_expired", Message: "This request could not be executed before the completion window expired."}
)

// writeFiles assembles and stores the output and error files of rec and
// ends it: cancelled, expired (its window ran out with lines unanswered)
// or completed. Lines without a result get a batch_cancelled or
// batch_expired error.
func (m *Manager) writeFiles(ctx context.Context, rec *batchRecord, lines []parsedLine, res map[int]*OutputLine) error {
	missing := errExpired
	if rec.Status == StatusCancelling {
		missing = errCancelled
	}
	var out, errs bytes.Buffer
	unanswered := 0
	for i, pl := range lines {
		l := res[i]
		if l == nil {
			e := missing
			l = &OutputLine{ID: fmt.Sprintf("batch_req_%s_%d", strings.TrimPrefix(rec.ID, "batch_"), i), CustomID: pl.msg.CustomID, Error: &e}
			unanswered++
		}
		b, _ := json.Marshal(l)
		dst := &errs
		if l.ok() {
			dst = &out
		}
		dst.Write(b)
		dst.WriteByte('\n')
	}
	now := m.now()
	purge := now.Add(m.cfg.ResultsTTL).Unix()
	suffix := strings.TrimPrefix(rec.ID, "batch_")
	var outID, errID string
	for _, f := range []struct {
		id   *string
		name string
		data []byte
	}{{&outID, "output", out.Bytes()}, {&errID, "errors", errs.Bytes()}} {
		if len(f.data) == 0 {
			continue
		}
		fr := fileRecord{File: File{
			ID: "file-" + suffix + "-" + f.name, Object: "file", Bytes: int64(len(f.data)), CreatedAt: now.Unix(),
			ExpiresAt: purge, Filename: rec.ID + "_" + f.name + ".jsonl", Purpose: PurposeBatchOutput, Status: "processed",
		}, Owner: rec.Owner}
		if _, err := m.storeFile(ctx, fr, f.data); err != nil {
			return err
		}
		*f.id = fr.ID
	}
	counts := countOf(res, len(lines))
	counts.Failed = len(lines) - counts.Completed
	_, err := m.updateBatch(ctx, rec.ID, func(r *batchRecord) bool {
		if terminal(r.Status) {
			return false
		}
		switch {
		case r.Status == StatusCancelling:
			r.Status, r.CancelledAt = StatusCancelled, now.Unix()
		case r.ExpireMS > 0 && unanswered > 0:
			r.Status, r.ExpiredAt = StatusExpired, now.Unix()
		default:
			r.Status, r.CompletedAt = StatusCompleted, now.Unix()
		}
		r.RequestCounts, r.OutputFileID, r.ErrorFileID, r.Purge = counts, outID, errID, purge
		return true
	})
	if err != nil {
		return err
	}
	m.unwatch(rec.ID)
	if err := m.st.Results.Purge(ctx, rec.ID+".>"); err != nil {
		m.log.Warn("purge batch results", "batch", rec.ID, "err", err)
	}
	return nil
}

func (m *Manager) unwatch(id string) {
	m.mu.Lock()
	delete(m.active, id)
	m.mu.Unlock()
}
