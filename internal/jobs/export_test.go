package jobs

import (
	"context"
	"encoding/json"
	"time"
)

// SetClock replaces m's clock; call it before Start.
func (m *Manager) SetClock(now func() time.Time) { m.now = now }

// Sweep runs the monitor's periodic sweep once, now.
func (m *Manager) Sweep(ctx context.Context) error { return m.rescan(ctx, false) }

// CreateJobUnqueued stores a new job's record without publishing its
// message: what a crash inside Submit leaves behind.
func (m *Manager) CreateJobUnqueued(ctx context.Context, owner, url, model string, body []byte) (*Job, error) {
	rec, err := m.createJob(ctx, owner, url, model, body)
	if err != nil {
		return nil, err
	}
	return &rec.Job, nil
}

// PublishJobAgain queues job id's message once more under msgID (not
// deduplicated against the first): a late duplicate.
func (m *Manager) PublishJobAgain(ctx context.Context, id, url string, body []byte, msgID string) error {
	msg, _ := json.Marshal(lineMsg{Job: id, URL: url, Body: body})
	return m.st.Queue.Publish(ctx, []QueueMsg{{Group: id, ID: msgID, Data: msg}})
}

// CheckBatch runs the monitor's per-tick check of batch id once, now.
func (m *Manager) CheckBatch(ctx context.Context, id string) error { return m.check(ctx, id) }

// CancelGrace is how long lines running at a cancel or an expiry may take
// before the batch's files are written.
const CancelGrace = cancelGrace
