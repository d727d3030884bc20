package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"courier/internal/completions"
	"courier/internal/jobs"
)

// Stored chat completions, OpenAI's API: a chat completion sent with
// "store": true (every interactive one with Config.StoreAll) is kept with
// its request messages and metadata, per owner (API key), and served by
// GET /v1/chat/completions (list), GET, POST (metadata) and DELETE
// /v1/chat/completions/{id}, and GET /v1/chat/completions/{id}/messages.
// It is stored before the answer's last byte is written (the JSON body, or
// the stream's [DONE]), so a client that got the answer finds it.

// storeTimeout bounds writing one stored completion. It is longer than the
// store's own retries of a write a leader change interrupts (20 s), so an
// answer given while a cluster elects a new leader for the bucket waits for
// it rather than lose the record (TestStoredCompletionsSurviveLeaderLoss).
const storeTimeout = 30 * time.Second

// SetCompletionStore makes h (a handler from New or NewWithJobs) keep chat
// completions in st and serve OpenAI's stored-completions endpoints; call
// it before h serves. Without it, "store": true is refused (400).
func SetCompletionStore(h http.Handler, st *completions.Store) {
	if s, ok := h.(*server); ok {
		s.stored = st
	}
}

// storedRoute matches the stored-completions routes (none without a
// store); POST /v1/chat/completions stays the generation route.
func (s *server) storedRoute(r *http.Request) (route, bool) {
	if s.stored == nil {
		return route{}, false
	}
	const label = "chat_completions_stored"
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if r.URL.Path == "/v1/chat/completions" {
		switch {
		case get:
			return route{http.MethodGet, label, true, s.listStored}, true
		case r.Method != http.MethodPost:
			return route{"GET, POST", label, true, nil}, true // 405 naming both
		}
		return route{}, false
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/chat/completions/")
	if !ok {
		return route{}, false
	}
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case id == "":
		return route{}, false
	case sub == "" && get:
		return route{http.MethodGet, label, true, s.getStored}, true
	case sub == "" && r.Method == http.MethodPost:
		return route{http.MethodPost, label, true, s.updateStored}, true
	case sub == "" && r.Method == http.MethodDelete:
		return route{http.MethodDelete, label, true, s.deleteStored}, true
	case sub == "":
		return route{"GET, POST, DELETE", label, true, nil}, true
	case sub == "messages":
		return route{http.MethodGet, label, true, s.storedMessages}, true
	}
	return route{}, false
}

// storedID is the {id} of /v1/chat/completions/{id}[/messages].
func storedID(r *http.Request) string {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/chat/completions/")
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// storeOwner is whose stored completions r reaches: its key's owner, or a
// batch line's or job's owner.
func (s *server) storeOwner(r *http.Request) string {
	if bg, _ := r.Context().Value(backgroundKey{}).(bool); bg {
		return jobs.OwnerFromContext(r.Context())
	}
	return s.owner(r)
}

// storedCompletion is a stored chat completion as the API shows it.
type storedCompletion struct {
	ChatCompletion
	Metadata map[string]string `json:"metadata"`
}

// storedView renders c; a record whose response does not parse is an
// internal error.
func storedView(c *completions.Completion) (storedCompletion, *Error) {
	v := storedCompletion{Metadata: c.Metadata}
	if err := json.Unmarshal(c.Response, &v.ChatCompletion); err != nil {
		return v, errorf(CodeInternal, "", "stored chat completion %s is damaged: %v", c.ID, err)
	}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	return v, nil
}

// storedError maps a completions error to the catalog.
func storedError(err error, id string) *Error {
	if err == nil {
		return nil
	}
	if e := jobsError(err, "stored chat completion"); e.Code != CodeNotFound {
		return e
	}
	return errorf(CodeNotFound, "", "no stored chat completion %q (only completions created with store: true by this API key are kept)", id)
}

// pageQuery reads after, limit (1…100, default 20) and order (asc, the
// default, or desc).
func pageQuery(r *http.Request) (completions.Page, *Error) {
	q := r.URL.Query()
	limit, e := listLimit(q.Get("limit"))
	if e != nil {
		return completions.Page{}, e
	}
	p := completions.Page{After: q.Get("after"), Limit: limit}
	switch o := q.Get("order"); o {
	case "", "asc":
	case "desc":
		p.Desc = true
	default:
		return p, errorf(CodeInvalidValue, "order", "order must be asc or desc, got %q", o)
	}
	return p, nil
}

// listStored serves GET /v1/chat/completions?model=&metadata[KEY]=VALUE&after=&limit=&order=.
func (s *server) listStored(w http.ResponseWriter, r *http.Request) {
	p, e := pageQuery(r)
	if e != nil {
		s.fail(w, e)
		return
	}
	f := completions.Filter{Model: r.URL.Query().Get("model"), Page: p}
	for k, vs := range r.URL.Query() {
		key, ok := strings.CutPrefix(k, "metadata[")
		if !ok {
			continue
		}
		key, ok = strings.CutSuffix(key, "]")
		if !ok || len(vs) != 1 {
			s.fail(w, errorf(CodeInvalidValue, "metadata", "filter by metadata as metadata[KEY]=VALUE, once per key; got %s", k))
			return
		}
		if f.Metadata == nil {
			f.Metadata = map[string]string{}
		}
		f.Metadata[key] = vs[0]
	}
	list, more, err := s.stored.List(r.Context(), s.storeOwner(r), f)
	if err != nil {
		s.fail(w, storedError(err, f.After))
		return
	}
	page := listPage[storedCompletion]{Object: "list", Data: make([]storedCompletion, 0, len(list)), HasMore: more}
	for i := range list {
		v, e := storedView(&list[i])
		if e != nil {
			s.fail(w, e)
			return
		}
		page.Data = append(page.Data, v)
	}
	if len(list) > 0 {
		page.FirstID, page.LastID = list[0].ID, list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// getStored serves GET /v1/chat/completions/{id}.
func (s *server) getStored(w http.ResponseWriter, r *http.Request) {
	id := storedID(r)
	c, err := s.stored.Get(r.Context(), s.storeOwner(r), id)
	if err != nil {
		s.fail(w, storedError(err, id))
		return
	}
	v, e := storedView(c)
	if e != nil {
		s.fail(w, e)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// storedMessages serves GET /v1/chat/completions/{id}/messages?after=&limit=&order=.
func (s *server) storedMessages(w http.ResponseWriter, r *http.Request) {
	id := storedID(r)
	p, e := pageQuery(r)
	if e != nil {
		s.fail(w, e)
		return
	}
	list, more, err := s.stored.Messages(r.Context(), s.storeOwner(r), id, p)
	if err != nil {
		s.fail(w, storedError(err, id))
		return
	}
	page := listPage[json.RawMessage]{Object: "list", Data: list, HasMore: more}
	if len(list) > 0 {
		page.FirstID, page.LastID = messageID(list[0]), messageID(list[len(list)-1])
	}
	writeJSON(w, http.StatusOK, page)
}

// messageID is the id field of a stored message.
func messageID(m json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(m, &v) // stored by storedMessagesOf: always an object with an id
	return v.ID
}

// updateStored serves POST /v1/chat/completions/{id}: {"metadata": {…}}
// replaces the metadata (null clears it).
func (s *server) updateStored(w http.ResponseWriter, r *http.Request) {
	id := storedID(r)
	var body struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	if e := readJSON(r, s.cfg.MaxBodyBytes, &body); e != nil {
		s.fail(w, e)
		return
	}
	if len(body.Metadata) == 0 {
		s.fail(w, errorf(CodeMissingParameter, "metadata", "metadata is required: the only field a stored chat completion's update changes"))
		return
	}
	md, e := parseMetadata(body.Metadata)
	if e != nil {
		s.fail(w, e)
		return
	}
	c, err := s.stored.UpdateMetadata(r.Context(), s.storeOwner(r), id, md)
	if err != nil {
		s.fail(w, storedError(err, id))
		return
	}
	v, e := storedView(c)
	if e != nil {
		s.fail(w, e)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// deleteStored serves DELETE /v1/chat/completions/{id}.
func (s *server) deleteStored(w http.ResponseWriter, r *http.Request) {
	id := storedID(r)
	if err := s.stored.Delete(r.Context(), s.storeOwner(r), id); err != nil {
		s.fail(w, storedError(err, id))
		return
	}
	writeJSON(w, http.StatusOK, deleted{ID: id, Object: "chat.completion.deleted", Deleted: true})
}

// parseMetadata reads a metadata object (null: none) and checks OpenAI's
// limits on it.
func parseMetadata(raw json.RawMessage) (map[string]string, *Error) {
	var md map[string]string
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, errorf(CodeInvalidType, "metadata", "metadata must be an object of string keys and string values")
	}
	if err := completions.ValidateMetadata("metadata", md); err != nil {
		return nil, jobsError(err, "metadata")
	}
	return md, nil
}

// storeRequest reads store and metadata of a chat request: whether to keep
// it (store: true, or every interactive one with StoreAll) and its
// metadata.
func (s *server) storeRequest(r *http.Request, body *ChatRequest) (*keptChat, *Error) {
	md, e := parseMetadata(body.Metadata)
	if e != nil {
		return nil, e
	}
	bg, _ := r.Context().Value(backgroundKey{}).(bool)
	store := body.Store != nil && *body.Store
	if !store && !(s.cfg.StoreAll && !bg) {
		return nil, nil
	}
	if s.stored == nil {
		if !store {
			return nil, nil
		}
		return nil, errorf(CodeUnsupported, "store", "store: this gateway keeps no chat completions (its bus has no JetStream)")
	}
	return &keptChat{s: s, ctx: r.Context(), owner: s.storeOwner(r), metadata: md, messages: body.Messages}, nil
}

// keptChat collects the answer of a chat completion to be stored: every
// choice's format registers itself, and once the whole answer is rendered
// (its body, or the stream's usage event, which comes after every choice
// finished) it is stored, before the client gets its last byte.
type keptChat struct {
	s        *server
	ctx      context.Context
	owner    string
	metadata map[string]string
	messages []ChatMessage

	fs       []*chatFormat
	rendered int // bodies rendered so far (non-streamed)
	done     bool
}

// register adds a choice's format.
func (k *keptChat) register(f *chatFormat) { k.fs = append(k.fs, f) }

// rendered is called by a choice's body: the last one stores.
func (k *keptChat) bodyRendered(u Usage) {
	k.rendered++
	if k.rendered == len(k.fs) {
		k.store(u)
	}
}

// store keeps the answer rendered from every choice, once.
func (k *keptChat) store(u Usage) {
	if k.done || len(k.fs) == 0 {
		return
	}
	k.done = true
	f0 := k.fs[0]
	cc := f0.completion(f0.finish, u)
	for _, f := range k.fs[1:] {
		cc.Choices = append(cc.Choices, f.completion(f.finish, u).Choices...)
	}
	resp, err := jsonMarshal(cc)
	if err != nil {
		k.s.log.Warn("stored completion: encoding", "id", cc.ID, "err", err)
		return
	}
	c := &completions.Completion{ID: cc.ID, Owner: k.owner, Model: cc.Model, Metadata: k.metadata, Response: resp}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(k.ctx), storeTimeout)
	defer cancel()
	if err := k.s.stored.Put(ctx, c, storedMessagesOf(cc.ID, k.messages)); err != nil {
		k.s.log.LogAttrs(ctx, slog.LevelWarn, "storing a chat completion failed", slog.String("id", cc.ID), slog.Any("err", err))
	}
}

// storedMessage is a request message as GET …/{id}/messages shows it.
type storedMessage struct {
	ID           string          `json:"id"`
	Role         string          `json:"role"`
	Content      json.RawMessage `json:"content"`       // the string, or null
	Name         *string         `json:"name"`          // null when none
	ContentParts json.RawMessage `json:"content_parts"` // the parts when content was an array, else null
	ToolCalls    []APIToolCall   `json:"tool_calls,omitempty"`
	ToolCallID   string          `json:"tool_call_id,omitempty"`
}

// storedMessagesOf renders the request messages of completion id.
func storedMessagesOf(id string, msgs []ChatMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		sm := storedMessage{ID: completions.MessageID(id, i), Role: m.Role, Content: nullJSON, ContentParts: nullJSON,
			ToolCalls: m.ToolCalls, ToolCallID: m.ToolCallID}
		if m.Name != "" {
			sm.Name = &m.Name
		}
		switch c := strings.TrimSpace(string(m.Content)); {
		case strings.HasPrefix(c, `"`):
			sm.Content = json.RawMessage(c)
		case strings.HasPrefix(c, "["):
			sm.ContentParts = json.RawMessage(c)
		}
		out[i] = mustJSON(sm)
	}
	return out
}
