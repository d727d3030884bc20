package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

func (m *Manager) storeFile(ctx context.Context, rec fileRecord, data []byte) (*File, error) {
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
