package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// BatchRequest is the body of POST /v1/batches.
type BatchRequest struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

// CreateBatch creates a batch over owner's input file. Its lines are
// validated and queued in the background (status validating, then
// in_progress); a batch whose file cannot be read as a whole fails.
func (m *Manager) CreateBatch(ctx context.Context, owner string, req BatchRequest) (*Batch, error) {
	exec := m.executor()
	if req.InputFileID == "" {
		return nil, invalid("input_file_id", "input_file_id is required")
	}
	if req.Endpoint == "" {
		return nil, invalid("endpoint", "endpoint is required")
	}
	if exec != nil && !exec.Executable(req.Endpoint) {
		return nil, invalid("endpoint", "endpoint %q is not a supported batch endpoint", req.Endpoint)
	}
	if req.CompletionWindow == "" {
		req.CompletionWindow = "24h"
	}
	window, err := parseWindow(req.CompletionWindow)
	if err != nil {
		return nil, err
	}
	f, err := m.File(ctx, owner, req.InputFileID)
	if errors.Is(err, ErrNotFound) {
		return nil, invalid("input_file_id", "no file %q", req.InputFileID)
	}
	if err != nil {
		return nil, err
	}
	if f.Purpose != PurposeBatch {
		return nil, invalid("input_file_id", "file %q has purpose %q, want %q", f.ID, f.Purpose, PurposeBatch)
	}
	now := m.now()
	if req.Metadata == nil {
		req.Metadata = map[string]string{}
	}
	rec := batchRecord{Batch: Batch{
		ID: newID("batch_", now), Object: "batch", Endpoint: req.Endpoint, InputFileID: f.ID,
		CompletionWindow: req.CompletionWindow, Status: StatusValidating, CreatedAt: now.Unix(),
		ExpiresAt: now.Add(window).Unix(), Metadata: req.Metadata,
	}, Owner: owner}
	data, _ := json.Marshal(&rec)
	if _, err := m.st.Batches.Create(ctx, rec.ID, data); err != nil {
		return nil, fmt.Errorf("jobs: store batch: %w", err)
	}
	m.watch(rec.ID)
	m.startEnqueue(rec.ID)
	return &rec.Batch, nil
}

// Bounds of a completion_window other than OpenAI's "24h" (a Courier
// extension).
const (
	minWindow = time.Minute
	maxWindow = 7 * 24 * time.Hour
)

// parseWindow reads a completion_window: OpenAI's "24h", or any Go duration
// from minWindow to maxWindow.
func parseWindow(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < minWindow || d > maxWindow {
		return 0, invalid("completion_window", "completion_window must be \"24h\" or a duration from 1m to 168h such as \"1h\", got %q", s)
	}
	return d, nil
}

// watch adds id to the batches the monitor follows.
func (m *Manager) watch(id string) {
	m.mu.Lock()
	if m.active[id] == nil {
		m.active[id] = &batchWatch{changed: m.now()}
	}
	m.mu.Unlock()
}

// startEnqueue queues batch id's lines on an owned goroutine unless that is
// already happening here.
func (m *Manager) startEnqueue(id string) {
	m.mu.Lock()
	if m.enqueuing[id] {
		m.mu.Unlock()
		return
	}
	m.enqueuing[id] = true
	m.mu.Unlock()
	started := m.goOwned(func() {
		defer func() { m.mu.Lock(); delete(m.enqueuing, id); m.mu.Unlock() }()
		if err := m.enqueue(m.ctx, id, m.executor()); err != nil && m.ctx.Err() == nil {
			m.log.Warn("batch enqueue failed; retried by the monitor", "batch", id, "err", err)
		}
	})
	if !started {
		m.mu.Lock()
		delete(m.enqueuing, id)
		m.mu.Unlock()
	}
}

// enqueue reads batch id's input file, stores an error result for every
// malformed line and queues the others, then marks it in_progress. It is
// idempotent: after a crash it runs again from the start, skipping the
// lines that have a result (queue dedup by line id and create-once results
// absorb the other repeats).
func (m *Manager) enqueue(ctx context.Context, id string, exec Executor) error {
	data, _, err := m.st.Batches.Get(ctx, id)
	if err != nil {
		return err
	}
	var rec batchRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.Status != StatusValidating {
		return err
	}
	content, err := m.st.Blobs.Get(ctx, rec.InputFileID)
	if errors.Is(err, ErrNotFound) {
		return m.failBatch(ctx, id, BatchError{Code: "invalid_file", Message: "the input file was deleted"})
	}
	if err != nil {
		return err
	}
	lines, fatal := parseLines(content, rec.Endpoint, m.cfg.MaxLines, exec)
	if fatal != nil {
		return m.failBatch(ctx, id, *fatal)
	}
	// Lines answered before a crash are not queued again: past the queue's
	// deduplication window they would run twice.
	done, err := m.results(ctx, id)
	if err != nil {
		return err
	}
	var msgs []QueueMsg
	var msgLine []int
	for i, l := range lines {
		if done[i] != nil {
			continue
		}
		if l.err != nil {
			m.storeResult(ctx, id, i, &OutputLine{CustomID: l.msg.CustomID, Error: l.err})
			continue
		}
		l.msg.Batch, l.msg.Index, l.msg.Owner = id, i, rec.Owner
		b, _ := json.Marshal(&l.msg)
		msgs = append(msgs, QueueMsg{Group: id, ID: resultKey(id, i), Data: b})
		msgLine = append(msgLine, i)
	}
	for start := 0; start < len(msgs); start += 1000 {
		end := min(start+1000, len(msgs))
		err := m.st.Queue.Publish(ctx, msgs[start:end])
		var pe *PublishError
		if errors.As(err, &pe) {
			for k, perr := range pe.Failed {
				i := msgLine[start+k]
				code := "internal_error"
				if errors.Is(perr, ErrTooLarge) {
					code = "request_too_large"
				}
				m.storeResult(ctx, id, i, &OutputLine{CustomID: lines[i].msg.CustomID,
					Error: &LineError{Code: code, Message: "the line could not be queued: " + perr.Error()}})
			}
		} else if err != nil {
			return fmt.Errorf("jobs: queue batch %s: %w", id, err)
		}
	}
	_, err = m.updateBatch(ctx, id, func(r *batchRecord) bool {
		if r.Status != StatusValidating {
			return false
		}
		r.Status, r.InProgressAt = StatusInProgress, m.now().Unix()
		r.RequestCounts.Total = len(lines)
		return true
	})
	return err
}

// parsedLine is one input line: a message to queue, or why not.
type parsedLine struct {
	msg lineMsg
	err *LineError
}

// inputLine is the JSON of one input line.
type inputLine struct {
	CustomID *string         `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// parseLines splits an input file into lines; a malformed line gets an
// error, a problem with the whole file (no lines, too many, duplicate
// custom_ids) is fatal.
func parseLines(content []byte, endpoint string, maxLines int, exec Executor) ([]parsedLine, *BatchError) {
	var lines []parsedLine
	seen := map[string]int{}
	lineNo := 0
	for raw := range bytes.SplitSeq(content, []byte("\n")) {
		lineNo++
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		if len(lines) == maxLines {
			return nil, &BatchError{Code: "too_many_lines", Message: fmt.Sprintf("the file has more than %d lines", maxLines)}
		}
		l := parseLine(raw, endpoint, exec)
		if l.err != nil {
			l.err.Message = fmt.Sprintf("line %d: %s", lineNo, l.err.Message)
		}
		if id := l.msg.CustomID; id != "" {
			if prev, dup := seen[id]; dup {
				return nil, &BatchError{Code: "duplicate_custom_id", Line: lineNo,
					Message: fmt.Sprintf("custom_id %q on line %d repeats line %d; custom_ids must be unique", id, lineNo, prev)}
			}
			seen[id] = lineNo
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return nil, &BatchError{Code: "empty_file", Message: "the input file has no lines"}
	}
	return lines, nil
}

func parseLine(raw []byte, endpoint string, exec Executor) parsedLine {
	bad := func(code, format string, args ...any) parsedLine {
		return parsedLine{err: &LineError{Code: code, Message: fmt.Sprintf(format, args...)}}
	}
	var in inputLine
	if err := json.Unmarshal(raw, &in); err != nil {
		l := bad("invalid_json", "not a JSON object of {custom_id, method, url, body}: %v", err)
		l.msg.CustomID = salvageCustomID(raw)
		return l
	}
	var l parsedLine
	switch {
	case in.CustomID == nil || *in.CustomID == "":
		l = bad("missing_required_parameter", "custom_id is required")
	case in.Method != "" && !strings.EqualFold(in.Method, "POST"):
		l = bad("invalid_value", "method must be POST, got %q", in.Method)
	case len(in.Body) == 0 || in.Body[0] != '{':
		l = bad("invalid_value", "body must be a JSON object")
	}
	if in.CustomID != nil {
		l.msg.CustomID = *in.CustomID
	}
	if l.err != nil {
		return l
	}
	url := in.URL
	if url == "" {
		url = endpoint
	}
	if exec != nil && !exec.Executable(url) {
		return parsedLine{msg: lineMsg{CustomID: l.msg.CustomID}, err: &LineError{Code: "invalid_value", Message: fmt.Sprintf("url %q is not a supported batch endpoint", url)}}
	}
	var flags struct {
		Stream bool `json:"stream"`
	}
	if json.Unmarshal(in.Body, &flags) == nil && flags.Stream {
		return parsedLine{msg: lineMsg{CustomID: l.msg.CustomID}, err: &LineError{Code: "unsupported_parameter", Message: "stream is not supported in a batch"}}
	}
	l.msg.URL, l.msg.Body = url, in.Body
	return l
}

// failBatch marks batch id failed with e.
func (m *Manager) failBatch(ctx context.Context, id string, e BatchError) error {
	_, err := m.updateBatch(ctx, id, func(r *batchRecord) bool {
		if terminal(r.Status) {
			return false
		}
		now := m.now()
		r.Status, r.FailedAt = StatusFailed, now.Unix()
		r.Errors = &BatchErrors{Object: "list", Data: []BatchError{e}}
		r.Purge = now.Add(m.cfg.ResultsTTL).Unix()
		return true
	})
	return err
}

// Batch returns owner's batch id.
func (m *Manager) Batch(ctx context.Context, owner, id string) (*Batch, error) {
	if !validKey(id) {
		return nil, ErrNotFound
	}
	var rec batchRecord
	if _, err := getRecord(ctx, m.st.Batches, id, owner, &rec, batchOwner); err != nil {
		return nil, err
	}
	m.addPending(&rec)
	return &rec.Batch, nil
}

// addPending adds the counts not yet flushed to rec, so that a batch read
// here right after a line finished shows it.
func (m *Manager) addPending(rec *batchRecord) {
	if terminal(rec.Status) {
		return
	}
	m.mu.Lock()
	if w := m.active[rec.ID]; w != nil {
		rec.RequestCounts.Completed += w.delta.Completed
		rec.RequestCounts.Failed += w.delta.Failed
	}
	m.mu.Unlock()
}

// Batches lists owner's batches newest first: at most limit after the
// batch id after ("" for the newest); more reports whether others follow.
func (m *Manager) Batches(ctx context.Context, owner, after string, limit int) (list []Batch, more bool, err error) {
	err = m.st.Batches.Scan(ctx, "", func(_ string, val []byte) error {
		var rec batchRecord
		if json.Unmarshal(val, &rec) == nil && rec.Owner == owner && (after == "" || rec.ID < after) {
			m.addPending(&rec)
			list = append(list, rec.Batch)
		}
		return nil
	})
	slices.SortFunc(list, func(a, b Batch) int { return strings.Compare(b.ID, a.ID) })
	if len(list) > limit {
		list, more = list[:limit], true
	}
	return list, more, err
}

// CancelBatch cancels owner's batch id: queued lines are dropped, lines
// running now may still finish, and the files are written with every line
// that has no answer marked batch_cancelled.
func (m *Manager) CancelBatch(ctx context.Context, owner, id string) (*Batch, error) {
	if _, err := m.Batch(ctx, owner, id); err != nil {
		return nil, err
	}
	rec, err := m.updateBatch(ctx, id, func(r *batchRecord) bool {
		if terminal(r.Status) || r.Status == StatusCancelling || r.Status == StatusFinalizing {
			return false
		}
		now := m.now()
		r.Status, r.CancellingAt, r.CancelMS = StatusCancelling, now.Unix(), now.UnixMilli()
		return true
	})
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusCancelling {
		if err := m.st.Queue.Purge(ctx, id); err != nil {
			m.log.Warn("purge cancelled batch", "batch", id, "err", err)
		}
	}
	m.watch(id)
	return &rec.Batch, nil
}

// salvageCustomID finds the custom_id of a line that is not valid JSON, so
// that its error still names it: the JSON string after the first
// "custom_id": key, or "".
func salvageCustomID(raw []byte) string {
	_, rest, ok := bytes.Cut(raw, []byte(`"custom_id"`))
	if !ok {
		return ""
	}
	rest = bytes.TrimLeft(rest, " \t")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	var id string
	if json.NewDecoder(bytes.NewReader(bytes.TrimLeft(rest[1:], " \t"))).Decode(&id) != nil {
		return ""
	}
	return id
}
