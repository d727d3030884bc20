package api

import (
	"net/http"

	"courier/internal/jobs"
)

// createBatch serves POST /v1/batches.
func (s *server) createBatch(w http.ResponseWriter, r *http.Request) {
	var req jobs.BatchRequest
	if e := readJSON(r, s.cfg.MaxBodyBytes, &req); e != nil {
		s.fail(w, e)
		return
	}
	b, err := s.jobs.CreateBatch(r.Context(), s.owner(r), req)
	if err != nil {
		s.fail(w, jobsError(err, "batch"))
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// getBatch serves GET /v1/batches/{id}.
func (s *server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.jobs.Batch(r.Context(), s.owner(r), pathID(r))
	if err != nil {
		s.fail(w, jobsError(err, "batch"))
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// listBatches serves GET /v1/batches?after=&limit=.
func (s *server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, e := listLimit(q.Get("limit"))
	if e != nil {
		s.fail(w, e)
		return
	}
	list, more, err := s.jobs.Batches(r.Context(), s.owner(r), q.Get("after"), limit)
	if err != nil {
		s.fail(w, jobsError(err, "batch"))
		return
	}
	if list == nil {
		list = []jobs.Batch{}
	}
	page := listPage[jobs.Batch]{Object: "list", Data: list, HasMore: more}
	if len(list) > 0 {
		page.FirstID, page.LastID = list[0].ID, list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// cancelBatch serves POST /v1/batches/{id}/cancel.
func (s *server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.jobs.CancelBatch(r.Context(), s.owner(r), pathID(r))
	if err != nil {
		s.fail(w, jobsError(err, "batch"))
		return
	}
	writeJSON(w, http.StatusOK, b)
}
