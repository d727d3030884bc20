package api

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net/http"

	"courier/internal/jobs"
)

// uploadFile serves POST /v1/files (multipart: file, purpose). The file
// part streams into the object store as it arrives, so an upload holds a
// chunk of memory whatever its size.
func (s *server) uploadFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// A refused upload is refused on its headers: the place, the quota
	// and the declared length are checked before any of the body is read,
	// and the answer closes the connection, so net/http does not read up
	// to 256 KiB of the unwanted body before answering (it does for a
	// connection it would keep).
	refuse := func(e *Error) {
		w.Header().Set("Connection", "close")
		s.fail(w, e)
	}
	var atLeast int64 // the file part's least size, from the declared length
	if r.ContentLength > uploadFraming {
		atLeast = r.ContentLength - uploadFraming
	}
	up, err := s.jobs.BeginUploadOf(ctx, s.owner(r), atLeast)
	if err != nil {
		refuse(jobsError(err, "file"))
		return
	}
	defer up.Close(ctx)
	// The place is given back before the answer is written: a client that
	// sends its next upload on seeing this answer must find it free.
	fail := func(e *Error) {
		up.Close(ctx)
		refuse(e)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.jobs.MaxFileBytes()+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		fail(errorf(CodeInvalidValue, "file", "expected a multipart/form-data body with file and purpose: %v", err))
		return
	}
	var purpose, name string
	var content hash.Hash // for an Idempotency-Key's fingerprint
	if r.Header.Get("Idempotency-Key") != "" {
		content = sha256.New()
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(uploadError(err))
			return
		}
		switch p.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(p, 256))
			if err != nil {
				fail(uploadError(err))
				return
			}
			purpose = string(b)
		case "file":
			name = p.FileName()
			var part io.Reader = p
			if content != nil {
				part = io.TeeReader(p, content)
			}
			if err := up.Put(ctx, part); err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					fail(uploadError(mbe))
				} else {
					fail(jobsError(err, "file"))
				}
				return
			}
		}
		// Other parts are skipped: NextPart discards what is left of them.
	}
	if purpose == "" {
		fail(errorf(CodeMissingParameter, "purpose", "purpose is required"))
		return
	}
	f, err := up.Finish(ctx, name, purpose)
	if err != nil {
		if inv := (*jobs.InvalidError)(nil); errors.As(err, &inv) && inv.Param == "file" {
			fail(errorf(CodeMissingParameter, "file", "the file part is required"))
			return
		}
		fail(jobsError(err, "file"))
		return
	}
	if content != nil {
		setUploadFingerprint(w, uploadFingerprint(purpose, f.Filename, content))
	}
	up.Close(ctx)
	writeJSON(w, http.StatusOK, f)
}

// uploadFraming is what an upload's body may hold besides the file's
// bytes (boundaries, part headers, purpose): a body that declares more
// than the limits plus this is refused before it is read.
const uploadFraming = 64 << 10

func uploadError(err error) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(CodeBodyTooLarge, "file", "the upload exceeds %d bytes", mbe.Limit)
	}
	return errorf(CodeInvalidValue, "file", "reading the multipart body: %v", err)
}

// listFiles serves GET /v1/files[?purpose=].
func (s *server) listFiles(w http.ResponseWriter, r *http.Request) {
	list, err := s.jobs.Files(r.Context(), s.owner(r), r.URL.Query().Get("purpose"))
	if err != nil {
		s.fail(w, jobsError(err, "file"))
		return
	}
	if list == nil {
		list = []jobs.File{}
	}
	writeJSON(w, http.StatusOK, listPage[jobs.File]{Object: "list", Data: list})
}

// getFile serves GET /v1/files/{id}.
func (s *server) getFile(w http.ResponseWriter, r *http.Request) {
	f, err := s.jobs.File(r.Context(), s.owner(r), pathID(r))
	if err != nil {
		s.fail(w, jobsError(err, "file"))
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// fileContent serves GET /v1/files/{id}/content.
func (s *server) fileContent(w http.ResponseWriter, r *http.Request) {
	data, err := s.jobs.FileContent(r.Context(), s.owner(r), pathID(r))
	if err != nil {
		s.fail(w, jobsError(err, "file"))
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// deleteFile serves DELETE /v1/files/{id}.
func (s *server) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	if err := s.jobs.DeleteFile(r.Context(), s.owner(r), id); err != nil {
		s.fail(w, jobsError(err, "file"))
		return
	}
	writeJSON(w, http.StatusOK, deleted{ID: id, Object: "file", Deleted: true})
}
