package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"net/http"
	"time"

	"courier/internal/jobs"
)

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) on POST
// /v1/files, POST /v1/batches and async generation calls: the first 2xx
// answer to a key is kept in the store's Idempotency bucket (JetStream KV,
// 24 hours, per API key), so a client whose request timed out can send it
// again and gets that answer back, from any gateway, after restarts. A
// different request under the same key is 422; one sent while the first
// still runs is 409. Answers other than 2xx are not kept: the retry runs
// again.

// idemStaleAfter is when a pending record is taken to be abandoned (its
// gateway died mid-request) and a retry may run the request again.
const idemStaleAfter = 15 * time.Minute

// idemRecord is one key's entry.
type idemRecord struct {
	Pending     bool            `json:"pending,omitempty"`
	Started     int64           `json:"started"` // unix ms
	Fingerprint string          `json:"fingerprint,omitempty"`
	Status      int             `json:"status,omitempty"`
	Header      http.Header     `json:"header,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
}

// idempotencyApplies reports whether r is a request an Idempotency-Key
// covers.
func (s *server) idempotencyApplies(r *http.Request) bool {
	if s.jobs == nil || s.jobs.Idempotency() == nil || r.Method != http.MethodPost || r.Header.Get("Idempotency-Key") == "" {
		return false
	}
	p := r.URL.Path
	return p == "/v1/files" || p == "/v1/batches" || (s.Executable(p) && wantsAsync(r))
}

// idemWriter captures the answer of the first request under a key; the
// upload handler sets fingerprint (a multipart body's bytes differ between
// retries: its boundary is random).
type idemWriter struct {
	http.ResponseWriter
	status      int
	buf         bytes.Buffer
	fingerprint string
}

func (w *idemWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *idemWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *idemWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setUploadFingerprint records an upload's fingerprint when w is an
// idempotent request's writer.
func setUploadFingerprint(w http.ResponseWriter, fp string) {
	for {
		switch x := w.(type) {
		case *idemWriter:
			x.fingerprint = fp
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// uploadFingerprint names an upload by what it stores.
func uploadFingerprint(purpose, filename string, content hash.Hash) string {
	h := sha256.New()
	io.WriteString(h, "POST /v1/files\x00"+purpose+"\x00"+filename+"\x00")
	h.Write(content.Sum(nil))
	return hex.EncodeToString(h.Sum(nil))
}

// hashBody hashes a body as the handler reads it.
type hashBody struct {
	io.ReadCloser
	h hash.Hash
}

func (b *hashBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.Write(p[:n])
	return n, err
}

// idempotent runs serve for r under its Idempotency-Key.
func (s *server) idempotent(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request)) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		s.fail(w, errorf(CodeInvalidValue, "Idempotency-Key", "the Idempotency-Key header is over 255 characters"))
		return
	}
	ctx := r.Context()
	kv := s.jobs.Idempotency()
	sum := sha256.Sum256([]byte(s.owner(r) + "\x00" + key))
	id := hex.EncodeToString(sum[:])
	pending, _ := json.Marshal(idemRecord{Pending: true, Started: time.Now().UnixMilli()})
	rev, err := kv.Create(ctx, id, pending)
	if errors.Is(err, jobs.ErrExists) {
		var taken bool
		rev, taken = s.idemReplay(w, r, id)
		if !taken {
			return // answered: replayed, 409 or 422
		}
	} else if err != nil {
		s.fail(w, errorf(CodeInternal, "", "idempotency store: %v", err))
		return
	}
	upload := r.URL.Path == "/v1/files"
	bodyHash := sha256.New()
	io.WriteString(bodyHash, r.Method+" "+r.URL.Path+"\x00")
	if !upload {
		r.Body = &hashBody{ReadCloser: r.Body, h: bodyHash}
	}
	iw := &idemWriter{ResponseWriter: w}
	serve(iw, r)
	store := context.WithoutCancel(ctx)
	if iw.status < 200 || iw.status > 299 {
		if err := kv.Delete(store, id); err != nil {
			s.log.Warn("idempotency: release key", "err", err)
		}
		return
	}
	fp := iw.fingerprint
	if !upload {
		fp = hex.EncodeToString(bodyHash.Sum(nil))
	}
	h := http.Header{}
	for _, k := range []string{"Content-Type", "Location", "Preference-Applied"} {
		if v := iw.Header().Get(k); v != "" {
			h.Set(k, v)
		}
	}
	done, _ := json.Marshal(idemRecord{Started: time.Now().UnixMilli(), Fingerprint: fp, Status: iw.status, Header: h,
		Body: json.RawMessage(bytes.TrimSpace(iw.buf.Bytes()))})
	if _, err := kv.Update(store, id, done, rev); err != nil {
		s.log.Warn("idempotency: store answer", "err", err)
	}
}

// idemReplay answers a request whose key exists: the first answer when the
// request is the same, 422 when not, 409 while the first still runs. It
// returns the record's revision and true instead when the first request
// was abandoned and this one may run in its place.
func (s *server) idemReplay(w http.ResponseWriter, r *http.Request, id string) (uint64, bool) {
	ctx := r.Context()
	kv := s.jobs.Idempotency()
	val, rev, err := kv.Get(ctx, id)
	var prev idemRecord
	if err == nil {
		err = json.Unmarshal(val, &prev)
	}
	if err != nil {
		s.fail(w, errorf(CodeInternal, "", "idempotency store: %v", err))
		return 0, false
	}
	if prev.Pending {
		if time.Since(time.UnixMilli(prev.Started)) < idemStaleAfter {
			s.fail(w, errorf(CodeIdempotencyBusy, "Idempotency-Key", "a request with this Idempotency-Key is still running; retry when it has answered"))
			return 0, false
		}
		taken, _ := json.Marshal(idemRecord{Pending: true, Started: time.Now().UnixMilli()})
		if rev, err = kv.Update(ctx, id, taken, rev); err != nil {
			s.fail(w, errorf(CodeIdempotencyBusy, "Idempotency-Key", "a request with this Idempotency-Key is still running; retry when it has answered"))
			return 0, false
		}
		return rev, true
	}
	fp, e := s.requestFingerprint(r)
	if e != nil {
		s.fail(w, e)
		return 0, false
	}
	if fp != prev.Fingerprint {
		s.fail(w, errorf(CodeIdempotencyReuse, "Idempotency-Key", "this Idempotency-Key was used with a different request in the last 24 hours"))
		return 0, false
	}
	for k, v := range prev.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(prev.Status)
	w.Write(append(prev.Body, '\n'))
	return 0, false
}

// requestFingerprint reads r's body (within the route's limit) and names
// it as idempotent's first run did.
func (s *server) requestFingerprint(r *http.Request) (string, *Error) {
	if r.URL.Path != "/v1/files" {
		h := sha256.New()
		io.WriteString(h, r.Method+" "+r.URL.Path+"\x00")
		if _, err := io.Copy(h, http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes)); err != nil {
			return "", errorf(CodeBodyTooLarge, "", "request body exceeds %d bytes", s.cfg.MaxBodyBytes)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, s.jobs.MaxFileBytes()+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return "", errorf(CodeInvalidValue, "file", "expected a multipart/form-data body with file and purpose: %v", err)
	}
	content := sha256.New()
	var purpose, name string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", uploadError(err)
		}
		switch p.FormName() {
		case "purpose":
			b, _ := io.ReadAll(io.LimitReader(p, 256))
			purpose = string(b)
		case "file":
			name = p.FileName()
			if _, err := io.Copy(content, io.LimitReader(p, s.jobs.MaxFileBytes()+1)); err != nil {
				return "", uploadError(err)
			}
		}
	}
	if name == "" {
		name = "upload.jsonl"
	}
	return uploadFingerprint(purpose, name, content), nil
}
