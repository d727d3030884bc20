package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// cancelGrace lets lines running at a cancel finish before the files are
// written.
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
		return m.finalize(ctx, id)
	default:
		m.unwatch(id)
	}
	return nil
}

// rescan reads every batch, job and file record: unfinished batches are
// watched (at startup also recounted or finished at once), records past
// their purge time are deleted.
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
	return m.expireJobs(ctx, now)
}

// expireJobs deletes finished jobs past their expiry.
func (m *Manager) expireJobs(ctx context.Context, now int64) error {
	var old []string
	err := m.st.Jobs.Scan(ctx, "", func(key string, val []byte) error {
		var rec jobRecord
		if json.Unmarshal(val, &rec) == nil && rec.ExpiresAt > 0 && rec.ExpiresAt <= now {
			old = append(old, key)
		}
		return nil
	})
	for _, k := range old {
		_ = m.st.Jobs.Delete(ctx, k)
	}
	return err
}
