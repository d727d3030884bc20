package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// File is an OpenAI file object.
type File struct {
	ID        string `json:"id"`
	Object    string `json:"object"` // "file"
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"` // batch, batch_output
	Status    string `json:"status"`  // processed
}

// fileRecord is a File as stored: with its owner.
type fileRecord struct {
	File
	Owner string `json:"owner,omitempty"`
}

// Batch statuses, as OpenAI names them.
const (
	StatusValidating = "validating"
	StatusInProgress = "in_progress"
	StatusFinalizing = "finalizing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelling = "cancelling"
	StatusCancelled  = "cancelled"
	StatusExpired    = "expired"
)

// Job statuses.
const (
	JobQueued     = "queued"
	JobInProgress = "in_progress"
	JobCompleted  = "completed"
	JobFailed     = "failed"
)

// Counts are a batch's request_counts.
type Counts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// BatchError is one entry of a batch's errors list.
type BatchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// BatchErrors is OpenAI's errors list of a batch.
type BatchErrors struct {
	Object string       `json:"object"` // "list"
	Data   []BatchError `json:"data"`
}

// Batch is an OpenAI batch object.
type Batch struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"` // "batch"
	Endpoint         string            `json:"endpoint"`
	Errors           *BatchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     string            `json:"output_file_id,omitempty"`
	ErrorFileID      string            `json:"error_file_id,omitempty"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     int64             `json:"in_progress_at,omitempty"`
	ExpiresAt        int64             `json:"expires_at,omitempty"`
	FinalizingAt     int64             `json:"finalizing_at,omitempty"`
	CompletedAt      int64             `json:"completed_at,omitempty"`
	FailedAt         int64             `json:"failed_at,omitempty"`
	ExpiredAt        int64             `json:"expired_at,omitempty"`
	CancellingAt     int64             `json:"cancelling_at,omitempty"`
	CancelledAt      int64             `json:"cancelled_at,omitempty"`
	RequestCounts    Counts            `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
}

// batchRecord is a Batch as stored.
type batchRecord struct {
	Batch
	Owner string `json:"owner,omitempty"`
	// CancelMS is when cancelling began, in Unix ms.
	CancelMS int64 `json:"cancel_ms,omitempty"`
	// ExpireMS is when the completion window ran out and the batch moved
	// to finalizing without all its answers, in Unix ms.
	ExpireMS int64 `json:"expire_ms,omitempty"`
	// Purge is when the record and its files go, in Unix seconds.
	Purge int64 `json:"purge,omitempty"`
}

// terminal reports whether status is final.
func terminal(status string) bool {
	switch status {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// JobResponse is a finished job's answer: what the synchronous call
// returned.
type JobResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id,omitempty"`
	Body       json.RawMessage `json:"body"`
}

// Job is one async request ("Prefer: respond-async").
type Job struct {
	ID          string       `json:"id"`
	Object      string       `json:"object"` // "job"
	Status      string       `json:"status"`
	Model       string       `json:"model,omitempty"`
	URL         string       `json:"url"`
	CreatedAt   int64        `json:"created_at"`
	StartedAt   int64        `json:"started_at,omitempty"`
	CompletedAt int64        `json:"completed_at,omitempty"`
	ExpiresAt   int64        `json:"expires_at,omitempty"`
	Response    *JobResponse `json:"response,omitempty"`
}

// jobRecord is a Job as stored.
type jobRecord struct {
	Job
	Owner string `json:"owner,omitempty"`
	// Request is the body to run, kept until the job ends so that a job
	// whose queue message was lost can be queued again.
	Request json.RawMessage `json:"request,omitempty"`
}

// lineMsg is one queued unit of background work: a batch line or a job.
type lineMsg struct {
	Batch    string          `json:"batch,omitempty"`
	Index    int             `json:"index"`
	CustomID string          `json:"custom_id,omitempty"`
	Job      string          `json:"job,omitempty"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
	// Owner is the batch's or job's owner, handed to the Executor in the
	// context (OwnerFromContext); absent in messages queued before it was
	// added.
	Owner string `json:"owner,omitempty"`
}

// LineError is the error of a line that produced no response.
type LineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// LineResponse is the response of an executed line.
type LineResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// OutputLine is one line of a batch's output or error file, in OpenAI's
// format.
type OutputLine struct {
	ID       string        `json:"id"`
	CustomID string        `json:"custom_id"`
	Response *LineResponse `json:"response"`
	Error    *LineError    `json:"error"`
}

// ok reports whether the line belongs in the output file (a 2xx answer).
func (l *OutputLine) ok() bool {
	return l.Error == nil && l.Response != nil && l.Response.StatusCode/100 == 2
}

// newID returns prefix followed by a time-ordered hex id, so that ids sort
// by creation.
func newID(prefix string, now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%013x%s", prefix, now.UnixMicro(), hex.EncodeToString(b[:]))
}

func resultKey(batch string, index int) string { return fmt.Sprintf("%s.%d", batch, index) }
