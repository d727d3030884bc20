package api

import (
	"errors"
	"io"
	"net/http"

	"courier/internal/jobs"
)

// uploadFile serves POST /v1/files (multipart: file, purpose).
func (s *server) uploadFile(w http.ResponseWriter, r *http.Request) {
	limit := s.jobs.MaxFileBytes() + 1<<20
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		s.fail(w, errorf(CodeInvalidValue, "file", "expected a multipart/form-data body with file and purpose: %v", err))
		return
	}
	var purpose, name string
	var data []byte
	gotFile := false
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.fail(w, uploadError(err))
			return
		}
		b, err := io.ReadAll(p)
		if err != nil {
			s.fail(w, uploadError(err))
			return
		}
		switch p.FormName() {
		case "purpose":
			purpose = string(b)
		case "file":
			data, name, gotFile = b, p.FileName(), true
		}
	}
	if !gotFile {
		s.fail(w, errorf(CodeMissingParameter, "file", "the file part is required"))
		return
	}
	if purpose == "" {
		s.fail(w, errorf(CodeMissingParameter, "purpose", "purpose is required"))
		return
	}
	f, err := s.jobs.UploadFile(r.Context(), s.owner(r), name, purpose, data)
	if err != nil {
		s.fail(w, jobsError(err, "file"))
		return
	}
	writeJSON(w, http.StatusOK, f)
}

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
