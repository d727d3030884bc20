package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Submit queues one request of owner to run in the background: a POST of
// body to url, for model. The job's response is what the synchronous call
// returns.
//
// The record is stored first (status queued, with the request) and the
// message published second; a crash between the two leaves a queued record
// without a message, which the monitor's sweep queues again (requeueLost).
func (m *Manager) Submit(ctx context.Context, owner, url, model string, body []byte) (*Job, error) {
	rec, err := m.createJob(ctx, owner, url, model, body)
	if err != nil {
		return nil, err
	}
	if err := m.publishJob(ctx, rec); err != nil {
		_ = m.st.Jobs.Delete(ctx, rec.ID)
		var pe *PublishError
		if errors.As(err, &pe) {
			for _, e := range pe.Failed {
				err = e
			}
		}
		return nil, fmt.Errorf("jobs: queue job: %w", err)
	}
	return &rec.Job, nil
}

// createJob stores the record of a new queued job, holding its request.
func (m *Manager) createJob(ctx context.Context, owner, url, model string, body []byte) (*jobRecord, error) {
	now := m.now()
	rec := jobRecord{Job: Job{ID: newID("job_", now), Object: "job", Status: JobQueued, Model: model,
		URL: url, CreatedAt: now.Unix()}, Owner: owner, Request: body}
	data, err := json.Marshal(&rec)
	if err != nil {
		return nil, invalid("", "the request body is not JSON: %v", err)
	}
	if _, err := m.st.Jobs.Create(ctx, rec.ID, data); err != nil {
		return nil, fmt.Errorf("jobs: store job: %w", err)
	}
	return &rec, nil
}

// publishJob queues rec's message; its id is the job id, so a second
// publish within the queue's deduplication window is dropped.
func (m *Manager) publishJob(ctx context.Context, rec *jobRecord) error {
	msg, err := json.Marshal(lineMsg{Job: rec.ID, URL: rec.URL, Body: rec.Request, Owner: rec.Owner})
	if err != nil {
		return fmt.Errorf("jobs: encode job %s: %w", rec.ID, err)
	}
	return m.st.Queue.Publish(ctx, []QueueMsg{{Group: rec.ID, ID: rec.ID, Data: msg}})
}

// Job returns owner's job id.
func (m *Manager) Job(ctx context.Context, owner, id string) (*Job, error) {
	if !validKey(id) {
		return nil, ErrNotFound
	}
	var rec jobRecord
	if _, err := getRecord(ctx, m.st.Jobs, id, owner, &rec, jobOwner); err != nil {
		return nil, err
	}
	return &rec.Job, nil
}

// JobFilter selects jobs in Jobs.
type JobFilter struct {
	Status string // "" for any
	Model  string // "" for any
	After  string // a job id: list older jobs only
	Limit  int
}

// Jobs lists owner's jobs newest first, filtered; more reports whether
// others follow.
func (m *Manager) Jobs(ctx context.Context, owner string, f JobFilter) (list []Job, more bool, err error) {
	err = m.st.Jobs.Scan(ctx, "", func(_ string, val []byte) error {
		var rec jobRecord
		if json.Unmarshal(val, &rec) != nil || rec.Owner != owner {
			return nil
		}
		if (f.Status == "" || rec.Status == f.Status) && (f.Model == "" || rec.Model == f.Model) && (f.After == "" || rec.ID < f.After) {
			rec.Response = nil // listings stay small; GET /v1/jobs/{id} has it
			list = append(list, rec.Job)
		}
		return nil
	})
	slices.SortFunc(list, func(a, b Job) int { return strings.Compare(b.ID, a.ID) })
	if len(list) > f.Limit {
		list, more = list[:f.Limit], true
	}
	return list, more, err
}

// updateJob applies fn to the stored job id until the update wins a race.
func (m *Manager) updateJob(ctx context.Context, id string, fn func(*jobRecord) bool) (*jobRecord, error) {
	for range 20 {
		data, rev, err := m.st.Jobs.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		var r jobRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("jobs: job %s: %w", id, err)
		}
		if !fn(&r) {
			return &r, nil
		}
		data, _ = json.Marshal(&r)
		if _, err := m.st.Jobs.Update(ctx, id, data, rev); err == nil {
			return &r, nil
		} else if !errors.Is(err, ErrConflict) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("jobs: job %s: %w", id, ErrConflict)
}

// finishJob stores a job's response once.
func (m *Manager) finishJob(ctx context.Context, id string, resp *JobResponse) error {
	now := m.now()
	set := func(r *jobRecord) bool {
		if r.Status == JobCompleted || r.Status == JobFailed {
			return false
		}
		r.Status = JobCompleted
		if resp.StatusCode/100 != 2 {
			r.Status = JobFailed
		}
		r.Response, r.CompletedAt, r.Request = resp, now.Unix(), nil
		r.ExpiresAt = now.Add(m.cfg.ResultsTTL).Unix()
		return true
	}
	_, err := m.updateJob(ctx, id, set)
	if errors.Is(err, ErrTooLarge) {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "the response is too large to keep",
			"type": "invalid_request_error", "param": nil, "code": "request_too_large"}})
		resp = &JobResponse{StatusCode: 413, RequestID: resp.RequestID, Body: b}
		_, err = m.updateJob(ctx, id, set)
	}
	return err
}
