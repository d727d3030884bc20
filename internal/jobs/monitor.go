package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// cancelGrace lets lines running at a cancel or an expiry finish before
// the files are written.
const cancelGrace = time.Second

// monitor flushes counts, drives unfinished batches to their end and
// expires old records, every tick, until Close.
func (m *Manager) monitor() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	lastScan := m.now()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		m.flushCounts(ctx)
		for _, id := range m.activeIDs() {
			if err := m.check(ctx, id); err != nil && ctx.Err() == nil {
				m.log.Warn("batch check", "batch", id, "err", err)
			}
		}
		if m.now().Sub(lastScan) >= m.cfg.SweepEvery {
			lastScan = m.now()
			if err := m.rescan(ctx, false); err != nil && ctx.Err() == nil {
				m.log.Warn("jobs rescan", "err", err)
			}
		}
		cancel()
	}
}

func (m *Manager) activeIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.active))
	for id := range m.active {
		ids = append(ids, id)
	}
	return ids
}

// check moves batch id on by its status.
func (m *Manager) check(ctx context.Context, id string) error {
	data, _, err := m.st.Batches.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		m.unwatch(id)
		return nil
	}
	if err != nil {
		return err
	}
	var rec batchRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		m.unwatch(id)
		return err
	}
	m.noteStatus(id, rec.Status)
	now := m.now()
	if (rec.Status == StatusValidating || rec.Status == StatusInProgress) && rec.ExpiresAt > 0 && now.Unix() >= rec.ExpiresAt {
		return m.expire(ctx, id)
	}
	switch rec.Status {
	case StatusValidating:
		m.startEnqueue(id)
	case StatusInProgress:
		c := rec.RequestCounts
		m.mu.Lock()
		w := m.active[id]
		stalled := false
		if w != nil {
			if c != w.last {
				w.last, w.changed = c, now
			} else if now.Sub(w.changed) >= m.cfg.StallAfter {
				stalled, w.changed = true, now
			}
		}
		m.mu.Unlock()
		if c.Completed+c.Failed >= c.Total || stalled {
			return m.finalize(ctx, id)
		}
	case StatusCancelling:
		if now.Sub(time.UnixMilli(rec.CancelMS)) >= cancelGrace {
			return m.finalize(ctx, id)
		}
	case StatusFinalizing:
		if rec.ExpireMS > 0 && now.Sub(time.UnixMilli(rec.ExpireMS)) < cancelGrace {
			return nil
		}
		return m.finalize(ctx, id)
	default:
		m.unwatch(id)
	}
	return nil
}

// expire ends batch id, whose completion window has passed: it moves to
// finalizing (runners then drop its lines), its queued lines are dropped,
// and after cancelGrace finalize writes its files, every line without an
// answer marked batch_expired.
func (m *Manager) expire(ctx context.Context, id string) error {
	rec, err := m.updateBatch(ctx, id, func(r *batchRecord) bool {
		if r.Status != StatusValidating && r.Status != StatusInProgress {
			return false
		}
		now := m.now()
		r.Status, r.FinalizingAt, r.ExpireMS = StatusFinalizing, now.Unix(), now.UnixMilli()
		return true
	})
	if err != nil {
		return err
	}
	if rec.ExpireMS > 0 {
		if err := m.st.Queue.Purge(ctx, id); err != nil {
			m.log.Warn("purge expired batch", "batch", id, "err", err)
		}
	}
	return nil
}

// rescan reads every batch and job record: unfinished batches are watched
// (at startup also recounted or finished at once), records past their
// purge time are deleted, and queued jobs whose message was lost are queued
// again.
func (m *Manager) rescan(ctx context.Context, startup bool) error {
	now := m.now().Unix()
	var expired []batchRecord
	err := m.st.Batches.Scan(ctx, "", func(_ string, val []byte) error {
		var rec batchRecord
		if json.Unmarshal(val, &rec) != nil {
			return nil
		}
		switch {
		case !terminal(rec.Status):
			m.watch(rec.ID)
		case rec.Purge > 0 && rec.Purge <= now:
			expired = append(expired, rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if startup {
		for _, id := range m.activeIDs() {
			if err := m.finalize(ctx, id); err != nil {
				m.log.Warn("batch recovery", "batch", id, "err", err)
			}
		}
	}
	for _, rec := range expired {
		for _, f := range []string{rec.OutputFileID, rec.ErrorFileID} {
			if f != "" {
				_ = m.st.Files.Delete(ctx, f)
				_ = m.st.Blobs.Delete(ctx, f)
			}
		}
		_ = m.st.Results.Purge(ctx, rec.ID+".>")
		_ = m.st.Batches.Delete(ctx, rec.ID)
	}
	return m.sweepJobs(ctx, m.now())
}

// lostAfter is how long a job may stay queued before the sweep asks the
// queue for its message: far longer than Submit takes between storing the
// record and publishing it, far shorter than the queue's two-minute
// deduplication window, which absorbs a publish racing with the sweep's.
const lostAfter = 10 * time.Second

// sweepJobs deletes finished jobs past their expiry and queues again the
// jobs queued for longer than lostAfter whose message is gone.
func (m *Manager) sweepJobs(ctx context.Context, now time.Time) error {
	var old, queued []string
	err := m.st.Jobs.Scan(ctx, "", func(key string, val []byte) error {
		var rec jobRecord
		if json.Unmarshal(val, &rec) != nil {
			return nil
		}
		switch {
		case rec.ExpiresAt > 0 && rec.ExpiresAt <= now.Unix():
			old = append(old, key)
		case rec.Status == JobQueued && now.Sub(time.Unix(rec.CreatedAt, 0)) >= lostAfter:
			queued = append(queued, key)
		}
		return nil
	})
	for _, k := range old {
		_ = m.st.Jobs.Delete(ctx, k)
	}
	for _, id := range queued {
		if err := m.requeueLost(ctx, id); err != nil && ctx.Err() == nil {
			m.log.Warn("requeue job", "job", id, "err", err)
		}
	}
	return err
}

// requeueLost publishes job id's message again when the job is still queued
// and no message of it is on the queue: Submit stored the record and
// crashed before its publish. (A message leaves the queue only when a
// runner acks it, which it does after storing the job's response, so a
// queued record without a message is such a job.)
func (m *Manager) requeueLost(ctx context.Context, id string) error {
	pending, err := m.st.Queue.Pending(ctx, id)
	if err != nil || pending {
		return err
	}
	// Read the record again: a job that ended between the scan and the
	// question to the queue has lost nothing.
	data, _, err := m.st.Jobs.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec jobRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("jobs: job %s: %w", id, err)
	}
	if rec.Status != JobQueued {
		return nil
	}
	if len(rec.Request) == 0 {
		// A record stored before records kept their request: fail it
		// clearly rather than leave it queued.
		b, _ := json.Marshal(map[string]any{"error": map[string]any{
			"message": "the job's queued request was lost and cannot be run; submit it again",
			"type":    "server_error", "param": nil, "code": "internal_error"}})
		return m.finishJob(ctx, id, &JobResponse{StatusCode: 500, Body: b})
	}
	m.log.Warn("queueing again a job whose queue message was lost", "job", id)
	return m.publishJob(ctx, &rec)
}
