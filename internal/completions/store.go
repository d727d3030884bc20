package completions

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"courier/internal/jobs"
)

// OpenAI's limits on metadata: at most 16 pairs, keys up to 64 characters,
// values up to 512.
const (
	MaxMetadataPairs    = 16
	MaxMetadataKeyLen   = 64
	MaxMetadataValueLen = 512
)

// Completion is one stored chat completion.
type Completion struct {
	ID    string `json:"id"` // the response's id, chatcmpl-…
	Owner string `json:"owner"`
	Model string `json:"model"`
	// Stored is when it was first stored, in Unix nanoseconds: the list
	// order.
	Stored   int64             `json:"stored"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Response is the chat.completion object the client was sent.
	Response json.RawMessage `json:"response"`
}

// entry is a completion's index entry: what a list filters and orders by,
// so that a list reads small entries and then only its page's records,
// whatever the size of the answers. Rev is the record revision it
// describes: an older one never replaces a newer one.
type entry struct {
	ID       string            `json:"id"`
	Owner    string            `json:"owner"`
	Model    string            `json:"model"`
	Stored   int64             `json:"stored"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Rev      uint64            `json:"rev"`
}

// messages is the record of a completion's request messages.
type messages struct {
	Owner    string            `json:"owner"`
	Messages []json.RawMessage `json:"messages"`
}

// Store keeps stored chat completions in a KV bucket. Its methods are safe
// for concurrent use; methods taking an owner see only that owner's
// records.
type Store struct {
	kv  jobs.KV
	now func() time.Time
}

// New returns a Store on kv.
func New(kv jobs.KV) *Store { return &Store{kv: kv, now: time.Now} }

// ValidateMetadata reports metadata over OpenAI's limits as a
// *jobs.InvalidError naming param.
func ValidateMetadata(param string, md map[string]string) error {
	if len(md) > MaxMetadataPairs {
		return &jobs.InvalidError{Param: param, Message: fmt.Sprintf("%s holds %d pairs; at most %d are allowed", param, len(md), MaxMetadataPairs)}
	}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		if n := utf8.RuneCountInString(k); n > MaxMetadataKeyLen {
			return &jobs.InvalidError{Param: param, Message: fmt.Sprintf("%s key %.20q… is %d characters; at most %d are allowed", param, k, n, MaxMetadataKeyLen)}
		}
		if n := utf8.RuneCountInString(md[k]); n > MaxMetadataValueLen {
			return &jobs.InvalidError{Param: param, Message: fmt.Sprintf("%s[%s] is %d characters; at most %d are allowed", param, k, n, MaxMetadataValueLen)}
		}
	}
	return nil
}

// ownerToken is owner as a key token ("" is "_": no API keys).
func ownerToken(owner string) string {
	if owner == "" {
		return "_"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(owner))
}

// idToken is id as a key token: an id a client looks up may hold dots,
// which separate key tokens.
func idToken(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func recordKey(owner, id string) string   { return "c." + ownerToken(owner) + "." + idToken(id) }
func messagesKey(owner, id string) string { return "m." + ownerToken(owner) + "." + idToken(id) }
func indexKey(owner, id string) string    { return "i." + ownerToken(owner) + "." + idToken(id) }

// MessageID is the id of message i of completion id, as OpenAI names them.
func MessageID(id string, i int) string { return id + "-" + strconv.Itoa(i) }

// Put stores c (with c.Owner, c.ID set) and its request messages msgs,
// each a JSON object; a completion already stored under the same id is
// replaced (ids are the gateway's random request ids: not expected).
func (s *Store) Put(ctx context.Context, c *Completion, msgs []json.RawMessage) error {
	if c.ID == "" || c.Response == nil {
		return errors.New("completions: Put needs an id and a response")
	}
	if err := ValidateMetadata("metadata", c.Metadata); err != nil {
		return err
	}
	if c.Stored == 0 {
		c.Stored = s.now().UnixNano()
	}
	if msgs == nil {
		msgs = []json.RawMessage{}
	}
	mb, err := json.Marshal(messages{Owner: c.Owner, Messages: msgs})
	if err != nil {
		return fmt.Errorf("completions: %w", err)
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("completions: %w", err)
	}
	if _, err := s.put(ctx, messagesKey(c.Owner, c.ID), mb); err != nil {
		return err
	}
	rev, err := s.put(ctx, recordKey(c.Owner, c.ID), cb)
	if err != nil {
		return err
	}
	return s.putIndex(ctx, c, rev)
}

// put stores val under key, replacing what is there, and returns its
// revision.
func (s *Store) put(ctx context.Context, key string, val []byte) (uint64, error) {
	for range 10 {
		rev, err := s.kv.Create(ctx, key, val)
		if !errors.Is(err, jobs.ErrExists) {
			return rev, err
		}
		_, old, err := s.kv.Get(ctx, key)
		if errors.Is(err, jobs.ErrNotFound) {
			continue // deleted meanwhile: create again
		} else if err != nil {
			return 0, err
		}
		if rev, err := s.kv.Update(ctx, key, val, old); !errors.Is(err, jobs.ErrConflict) {
			return rev, err
		}
	}
	return 0, fmt.Errorf("completions: %s: %w", key, jobs.ErrConflict)
}

// putIndex stores c's index entry for its record revision rev, unless an
// entry for a later revision is there already (two updates racing).
func (s *Store) putIndex(ctx context.Context, c *Completion, rev uint64) error {
	key := indexKey(c.Owner, c.ID)
	val, err := json.Marshal(entry{ID: c.ID, Owner: c.Owner, Model: c.Model, Stored: c.Stored, Metadata: c.Metadata, Rev: rev})
	if err != nil {
		return fmt.Errorf("completions: %w", err)
	}
	for range 10 {
		data, old, err := s.kv.Get(ctx, key)
		if errors.Is(err, jobs.ErrNotFound) {
			if _, err := s.kv.Create(ctx, key, val); !errors.Is(err, jobs.ErrExists) {
				return err
			}
			continue
		} else if err != nil {
			return err
		}
		var e entry
		if json.Unmarshal(data, &e) == nil && e.Rev > rev {
			return nil
		}
		if _, err := s.kv.Update(ctx, key, val, old); !errors.Is(err, jobs.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("completions: %s: %w", key, jobs.ErrConflict)
}

// Get returns owner's completion id, or jobs.ErrNotFound.
func (s *Store) Get(ctx context.Context, owner, id string) (*Completion, error) {
	c, _, err := s.get(ctx, owner, id)
	return c, err
}

func (s *Store) get(ctx context.Context, owner, id string) (*Completion, uint64, error) {
	if id == "" {
		return nil, 0, jobs.ErrNotFound
	}
	data, rev, err := s.kv.Get(ctx, recordKey(owner, id))
	if err != nil {
		return nil, 0, err
	}
	var c Completion
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, 0, fmt.Errorf("completions: record %s: %w", id, err)
	}
	if c.Owner != owner || c.ID != id { // keys are derived from both; never expected
		return nil, 0, jobs.ErrNotFound
	}
	return &c, rev, nil
}

// Page selects a page of a list: up to Limit items after the one whose id
// is After ("" from the start), in ascending or (Desc) descending order.
type Page struct {
	After string
	Limit int
	Desc  bool
}

// Filter selects owner's completions in List.
type Filter struct {
	Model    string            // "" for any
	Metadata map[string]string // every pair must match
	Page
}

// List returns a page of owner's completions matching f, ordered by the
// time they were stored (then by id); more reports whether others follow.
// It reads the owner's index entries, then the records of the page only.
// An After naming no completion of owner is a *jobs.InvalidError.
func (s *Store) List(ctx context.Context, owner string, f Filter) (list []Completion, more bool, err error) {
	var cursor *entry
	var es []entry
	err = s.kv.Scan(ctx, "i."+ownerToken(owner)+".*", func(_ string, val []byte) error {
		var e entry
		if json.Unmarshal(val, &e) != nil || e.Owner != owner {
			return nil
		}
		if f.After != "" && e.ID == f.After {
			cursor = &e
		}
		if f.Model != "" && e.Model != f.Model {
			return nil
		}
		for k, v := range f.Metadata {
			if got, ok := e.Metadata[k]; !ok || got != v {
				return nil
			}
		}
		es = append(es, e)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if f.After != "" && cursor == nil {
		return nil, false, &jobs.InvalidError{Param: "after", Message: fmt.Sprintf("after: no stored chat completion %q", f.After)}
	}
	order := func(a, b entry) int {
		if c := cmp.Compare(a.Stored, b.Stored); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
	if f.Desc {
		order = func(a, b entry) int {
			if c := cmp.Compare(b.Stored, a.Stored); c != 0 {
				return c
			}
			return cmp.Compare(b.ID, a.ID)
		}
	}
	slices.SortFunc(es, order)
	if cursor != nil {
		i, found := slices.BinarySearchFunc(es, *cursor, order)
		if found {
			i++ // the cursor itself, when it matches the filter
		}
		es = es[i:]
	}
	// Read the page's records; one deleted or expired since its entry was
	// read is left out, and the next entry takes its place.
	for _, e := range es {
		if f.Limit > 0 && len(list) == f.Limit {
			return list, true, nil
		}
		c, _, err := s.get(ctx, owner, e.ID)
		if errors.Is(err, jobs.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, false, err
		}
		list = append(list, *c)
	}
	return list, false, nil
}

// cut returns at most limit items of list (all when limit ≤ 0) and whether
// some were left out.
func cut[T any](list []T, limit int) ([]T, bool) {
	if limit > 0 && len(list) > limit {
		return list[:limit], true
	}
	return list, false
}

// Messages returns a page of the request messages of owner's completion
// id; the page's After is a message id (MessageID). A completion without
// stored messages has none.
func (s *Store) Messages(ctx context.Context, owner, id string, p Page) (list []json.RawMessage, more bool, err error) {
	if _, err := s.Get(ctx, owner, id); err != nil {
		return nil, false, err
	}
	var m messages
	if data, _, err := s.kv.Get(ctx, messagesKey(owner, id)); errors.Is(err, jobs.ErrNotFound) {
		return []json.RawMessage{}, false, nil
	} else if err != nil {
		return nil, false, err
	} else if err := json.Unmarshal(data, &m); err != nil {
		return nil, false, fmt.Errorf("completions: messages of %s: %w", id, err)
	}
	idx := make([]int, len(m.Messages))
	for i := range idx {
		idx[i] = i
	}
	if p.Desc {
		slices.Reverse(idx)
	}
	if p.After != "" {
		at := -1
		for j, i := range idx {
			if MessageID(id, i) == p.After {
				at = j
			}
		}
		if at < 0 {
			return nil, false, &jobs.InvalidError{Param: "after", Message: fmt.Sprintf("after: no message %q in %s", p.After, id)}
		}
		idx = idx[at+1:]
	}
	idx, more = cut(idx, p.Limit)
	list = make([]json.RawMessage, len(idx))
	for j, i := range idx {
		list[j] = m.Messages[i]
	}
	return list, more, nil
}

// UpdateMetadata replaces the metadata of owner's completion id (nil
// clears it) and returns the completion as stored.
func (s *Store) UpdateMetadata(ctx context.Context, owner, id string, md map[string]string) (*Completion, error) {
	if err := ValidateMetadata("metadata", md); err != nil {
		return nil, err
	}
	for range 20 {
		c, rev, err := s.get(ctx, owner, id)
		if err != nil {
			return nil, err
		}
		c.Metadata = md
		data, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("completions: %w", err)
		}
		rev, err = s.kv.Update(ctx, recordKey(owner, id), data, rev)
		if errors.Is(err, jobs.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		if err := s.putIndex(ctx, c, rev); err != nil {
			return nil, err
		}
		// Write the messages again, so that they expire with the record
		// (the index entry was just written).
		if mb, rev, err := s.kv.Get(ctx, messagesKey(owner, id)); err == nil {
			_, _ = s.kv.Update(ctx, messagesKey(owner, id), mb, rev) // a lost race wrote them anyway
		} else if !errors.Is(err, jobs.ErrNotFound) {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("completions: %s: %w", id, jobs.ErrConflict)
}

// Delete removes owner's completion id, its messages and its index entry;
// jobs.ErrNotFound when owner has none by that id.
func (s *Store) Delete(ctx context.Context, owner, id string) error {
	if _, err := s.Get(ctx, owner, id); err != nil {
		return err
	}
	for _, key := range []string{indexKey(owner, id), recordKey(owner, id), messagesKey(owner, id)} {
		if err := s.kv.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}
