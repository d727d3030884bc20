package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// File purposes.
const (
	PurposeBatch       = "batch"
	PurposeBatchOutput = "batch_output"
)

// InvalidError is a caller's mistake; Param names the field.
type InvalidError struct {
	Param   string
	Message string
}

func (e *InvalidError) Error() string { return "jobs: " + e.Message }

func invalid(param, format string, args ...any) error {
	return &InvalidError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// UploadFile stores data as a new file of owner.
func (m *Manager) UploadFile(ctx context.Context, owner, filename, purpose string, data []byte) (*File, error) {
	if purpose != PurposeBatch {
		return nil, invalid("purpose", "purpose must be %q, got %q", PurposeBatch, purpose)
	}
	if int64(len(data)) > m.cfg.MaxFileBytes {
		return nil, fmt.Errorf("%w: file is %d bytes, the limit is %d", ErrTooLarge, len(data), m.cfg.MaxFileBytes)
	}
	if filename == "" {
		filename = "upload.jsonl"
	}
	now := m.now()
	rec := fileRecord{File: File{
		ID: newID("file-", now), Object: "file", Bytes: int64(len(data)), CreatedAt: now.Unix(),
		Filename: filename, Purpose: purpose, Status: "processed",
	}, Owner: owner}
	return m.storeFile(ctx, rec, data)
}

// Upload is one file being streamed into the store (BeginUpload).
type Upload struct {
	m      *Manager
	owner  string
	id     string
	size   int64
	room   int64 // bytes the owner may still store (math.MaxInt64: no quota)
	put    bool  // the content is stored
	done   bool  // the record is stored
	closed bool
	// With Store.Quota (quota.go): the bytes reserved so far and the view
	// the next reservation builds on.
	quota    bool
	reserved int64
	view     quotaView
}

// BeginUpload starts an upload of owner: it takes one of the
// MaxConcurrentUploads places (ErrBusy when none is left) and computes the
// room the owner's quota leaves (ErrQuota when none). The caller streams
// the content with Put, then calls Finish, and always Close.
func (m *Manager) BeginUpload(ctx context.Context, owner string) (*Upload, error) {
	return m.BeginUploadOf(ctx, owner, 0)
}

// BeginUploadOf is BeginUpload for a file known to be at least atLeast
// bytes (an HTTP body's declared length less its framing; 0: unknown): it
// is ErrTooLarge or ErrQuota at once, before any byte is read, when that
// much would not fit.
func (m *Manager) BeginUploadOf(ctx context.Context, owner string, atLeast int64) (*Upload, error) {
	if atLeast > m.cfg.MaxFileBytes {
		return nil, fmt.Errorf("%w: the file is at least %d bytes, the limit is %d", ErrTooLarge, atLeast, m.cfg.MaxFileBytes)
	}
	m.mu.Lock()
	if m.uploads >= m.cfg.MaxConcurrentUploads {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %d uploads are running, the limit is %d; retry shortly", ErrBusy, m.uploads, m.cfg.MaxConcurrentUploads)
	}
	m.uploads++
	m.mu.Unlock()
	u := &Upload{m: m, owner: owner, id: newID("file-", m.now()), room: math.MaxInt64}
	if limit := m.cfg.MaxStoredBytesPerOwner; limit > 0 && m.st.Quota != nil {
		// Exact across gateways: reserve what the body declares (at
		// least a byte, so a full quota refuses at once), then each
		// chunk as it comes (limitReader).
		u.quota = true
		if err := u.reserveTo(ctx, max(atLeast, 1)); err != nil {
			u.Close(ctx)
			return nil, err
		}
	} else if limit > 0 {
		used, err := m.storedBytes(ctx, owner)
		if err != nil {
			u.Close(ctx)
			return nil, err
		}
		m.mu.Lock()
		used += m.uploading[owner]
		m.mu.Unlock()
		if used >= limit || atLeast > limit-used {
			u.Close(ctx)
			return nil, fmt.Errorf("%w: this key stores %d bytes in files and this upload is at least %d, the limit is %d; delete files first",
				ErrQuota, used, atLeast, limit)
		}
		u.room = limit - used
	}
	return u, nil
}

// storedBytes sums the sizes of owner's files.
func (m *Manager) storedBytes(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := m.st.Files.Scan(ctx, "", func(_ string, val []byte) error {
		var rec fileRecord
		if json.Unmarshal(val, &rec) == nil && rec.Owner == owner {
			n += rec.Bytes
		}
		return nil
	})
	return n, err
}

// reserveTo makes u's reservation at least n bytes.
func (u *Upload) reserveTo(ctx context.Context, n int64) error {
	if n <= u.reserved {
		return nil
	}
	if err := u.m.reserve(ctx, u.owner, n-u.reserved, true, &u.view); err != nil {
		return err
	}
	u.reserved = n
	return nil
}

// Put streams r into the store (at most a chunk in memory). More than
// MaxFileBytes is ErrTooLarge, more than the owner's room ErrQuota; then
// nothing is kept.
func (u *Upload) Put(ctx context.Context, r io.Reader) error {
	if u.put {
		return invalid("file", "only one file part is allowed")
	}
	lr := &limitReader{ctx: ctx, r: r, u: u}
	n, err := u.m.st.Blobs.PutReader(ctx, u.id, lr)
	if err != nil {
		return fmt.Errorf("jobs: store file: %w", err)
	}
	u.size, u.put = n, true
	return nil
}

// Finish validates purpose and stores the file's record.
func (u *Upload) Finish(ctx context.Context, filename, purpose string) (*File, error) {
	if purpose != PurposeBatch {
		return nil, invalid("purpose", "purpose must be %q, got %q", PurposeBatch, purpose)
	}
	if !u.put {
		return nil, invalid("file", "the file part is required")
	}
	if filename == "" {
		filename = "upload.jsonl"
	}
	rec := fileRecord{File: File{
		ID: u.id, Object: "file", Bytes: u.size, CreatedAt: u.m.now().Unix(),
		Filename: filename, Purpose: purpose, Status: "processed",
	}, Owner: u.owner}
	meta, _ := json.Marshal(&rec)
	if _, err := u.m.st.Files.Create(ctx, rec.ID, meta); err != nil && !errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("jobs: store file record: %w", err)
	}
	u.done = true
	return &rec.File, nil
}

// Close gives the upload's place back and deletes content stored without
// a record (a failed or abandoned upload). Calls after the first do
// nothing.
func (u *Upload) Close(ctx context.Context) {
	if u.closed {
		return
	}
	u.closed = true
	m := u.m
	if u.quota {
		// After the record (Finish) or instead of it: the bytes are
		// counted by the record now, or not stored at all.
		defer m.release(context.WithoutCancel(ctx), u.owner, u.reserved)
	}
	m.mu.Lock()
	m.uploads--
	if m.uploading[u.owner] -= u.size; m.uploading[u.owner] <= 0 {
		delete(m.uploading, u.owner)
	}
	m.mu.Unlock()
	u.size = 0
	if u.put && !u.done {
		if err := m.st.Blobs.Delete(context.WithoutCancel(ctx), u.id); err != nil {
			m.log.Warn("delete abandoned upload", "file", u.id, "err", err)
		}
	}
}

// limitReader counts an upload's bytes against MaxFileBytes and its
// owner's room, and in the manager's in-flight total for the owner.
type limitReader struct {
	ctx context.Context
	r   io.Reader
	u   *Upload
	n   int64
}

// Read fills p whole unless the content ends: the object store makes one
// message of each Read, and a multipart part hands out a few KiB at a
// time, which would make tens of thousands of small messages and stall the
// store's window of unacknowledged publishes.
func (l *limitReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(l.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	if n > 0 {
		l.n += int64(n)
		u := l.u
		u.m.mu.Lock()
		u.m.uploading[u.owner] += int64(n)
		u.m.mu.Unlock()
		u.size = l.n // counted in uploading until Close
		switch {
		case l.n > u.m.cfg.MaxFileBytes:
			return 0, fmt.Errorf("%w: the file exceeds %d bytes", ErrTooLarge, u.m.cfg.MaxFileBytes)
		case u.quota && l.n > u.reserved:
			// Reserve ahead, so that concurrent uploads of one key meet
			// in the quota bucket every few MiB rather than every chunk;
			// near the limit, exactly what arrived.
			if err := u.reserveTo(l.ctx, (l.n+quotaStep-1)/quotaStep*quotaStep); err != nil {
				if !errors.Is(err, ErrQuota) {
					return 0, err
				}
				if err := u.reserveTo(l.ctx, l.n); err != nil {
					return 0, err
				}
			}
		case l.n > u.room:
			return 0, fmt.Errorf("%w: the file would take this key's stored files past the limit of %d bytes (%d left); delete files first",
				ErrQuota, u.m.cfg.MaxStoredBytesPerOwner, u.room)
		}
	}
	return n, err
}

func (m *Manager) storeFile(ctx context.Context, rec fileRecord, data []byte) (*File, error) {
	if m.st.Quota != nil && m.cfg.MaxStoredBytesPerOwner > 0 {
		// Counted while on its way, as an upload is (quota.go), but never
		// refused: a batch's output is written whatever the quota.
		var v quotaView
		n := int64(len(data))
		if err := m.reserve(ctx, rec.Owner, n, false, &v); err != nil {
			return nil, err
		}
		defer m.release(context.WithoutCancel(ctx), rec.Owner, n)
	}
	if err := m.st.Blobs.Put(ctx, rec.ID, data); err != nil {
		return nil, fmt.Errorf("jobs: store file: %w", err)
	}
	meta, _ := json.Marshal(&rec)
	if _, err := m.st.Files.Create(ctx, rec.ID, meta); err != nil && !errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("jobs: store file record: %w", err)
	}
	return &rec.File, nil
}

// File returns owner's file id.
func (m *Manager) File(ctx context.Context, owner, id string) (*File, error) {
	var rec fileRecord
	if !validKey(id) {
		return nil, ErrNotFound
	}
	if _, err := getRecord(ctx, m.st.Files, id, owner, &rec, fileOwner); err != nil {
		return nil, err
	}
	return &rec.File, nil
}

// FileContent returns the content of owner's file id.
func (m *Manager) FileContent(ctx context.Context, owner, id string) ([]byte, error) {
	if _, err := m.File(ctx, owner, id); err != nil {
		return nil, err
	}
	return m.st.Blobs.Get(ctx, id)
}

// DeleteFile deletes owner's file id.
func (m *Manager) DeleteFile(ctx context.Context, owner, id string) error {
	if _, err := m.File(ctx, owner, id); err != nil {
		return err
	}
	if err := m.st.Files.Delete(ctx, id); err != nil {
		return fmt.Errorf("jobs: delete file: %w", err)
	}
	return m.st.Blobs.Delete(ctx, id)
}

// Files lists owner's files, newest first, optionally of one purpose.
func (m *Manager) Files(ctx context.Context, owner, purpose string) ([]File, error) {
	var out []File
	err := m.st.Files.Scan(ctx, "", func(_ string, val []byte) error {
		var rec fileRecord
		if json.Unmarshal(val, &rec) == nil && rec.Owner == owner && (purpose == "" || rec.Purpose == purpose) {
			out = append(out, rec.File)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(b.ID, a.ID) })
	return out, err
}

// validKey reports whether s can be a key (ids come from URLs).
func validKey(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
