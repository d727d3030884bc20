package completions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"courier/internal/bus/natsbus"
	"courier/internal/completions"
	"courier/internal/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect")) // see jobs_test.go
}

// openStore starts an embedded NATS server on dir and opens the store on
// it; the returned func stops both.
func openStore(t testing.TB, dir string, ttl time.Duration) (*completions.Store, func()) {
	s, _, stop := openStoreKV(t, dir, ttl)
	return s, stop
}

// openStoreKV is openStore, also returning the bucket.
func openStoreKV(t testing.TB, dir string, ttl time.Duration) (*completions.Store, jobs.KV, func()) {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "t", DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	kv, err := natsbus.OpenCompletionStore(t.Context(), conn, natsbus.CompletionStoreConfig{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx := context.Background()
		_ = conn.Close(ctx)
		_ = srv.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return completions.New(kv), kv, stop
}

func put(t *testing.T, s *completions.Store, owner, id, model string, stored int64, md map[string]string, msgs ...string) {
	t.Helper()
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		raw[i] = json.RawMessage(fmt.Sprintf(`{"id":%q,"role":"user","content":%q}`, completions.MessageID(id, i), m))
	}
	c := &completions.Completion{ID: id, Owner: owner, Model: model, Stored: stored, Metadata: md,
		Response: json.RawMessage(fmt.Sprintf(`{"id":%q,"object":"chat.completion"}`, id))}
	if err := s.Put(t.Context(), c, raw); err != nil {
		t.Fatal(err)
	}
}

func ids(list []completions.Completion) string {
	var b []string
	for _, c := range list {
		b = append(b, c.ID)
	}
	return strings.Join(b, ",")
}

// TestStoreListPagesAndFilters pages through one owner's completions in
// both orders, with a model and a metadata filter, and finds nothing of
// another owner's.
func TestStoreListPagesAndFilters(t *testing.T) {
	s, _ := openStore(t, t.TempDir(), 0)
	ctx := t.Context()
	for i := range 5 {
		model := "a"
		if i%2 == 1 {
			model = "b"
		}
		put(t, s, "alice", fmt.Sprintf("chatcmpl-%d", i), model, int64(100+i), map[string]string{"i": fmt.Sprint(i), "team": "x"})
	}
	// Stored at the same time as chatcmpl-2: ordered after it by id.
	put(t, s, "alice", "chatcmpl-2b", "a", 102, nil)
	put(t, s, "bob", "chatcmpl-bob", "a", 1, map[string]string{"team": "x"})

	for _, tc := range []struct {
		f         completions.Filter
		want      string
		wantMore  bool
		wantError bool
	}{
		{completions.Filter{}, "chatcmpl-0,chatcmpl-1,chatcmpl-2,chatcmpl-2b,chatcmpl-3,chatcmpl-4", false, false},
		{completions.Filter{Page: completions.Page{Limit: 2}}, "chatcmpl-0,chatcmpl-1", true, false},
		{completions.Filter{Page: completions.Page{Limit: 2, After: "chatcmpl-1"}}, "chatcmpl-2,chatcmpl-2b", true, false},
		{completions.Filter{Page: completions.Page{Limit: 3, After: "chatcmpl-2b"}}, "chatcmpl-3,chatcmpl-4", false, false},
		{completions.Filter{Page: completions.Page{Limit: 2, Desc: true}}, "chatcmpl-4,chatcmpl-3", true, false},
		{completions.Filter{Page: completions.Page{Limit: 2, Desc: true, After: "chatcmpl-3"}}, "chatcmpl-2b,chatcmpl-2", true, false},
		{completions.Filter{Model: "b"}, "chatcmpl-1,chatcmpl-3", false, false},
		// The cursor need not match the filter.
		{completions.Filter{Model: "b", Page: completions.Page{After: "chatcmpl-2"}}, "chatcmpl-3", false, false},
		{completions.Filter{Metadata: map[string]string{"team": "x", "i": "4"}}, "chatcmpl-4", false, false},
		{completions.Filter{Metadata: map[string]string{"team": "y"}}, "", false, false},
		{completions.Filter{Page: completions.Page{After: "chatcmpl-bob"}}, "", false, true},
	} {
		list, more, err := s.List(ctx, "alice", tc.f)
		var inv *jobs.InvalidError
		if tc.wantError {
			if !errors.As(err, &inv) || inv.Param != "after" {
				t.Errorf("%+v: err %v, want an invalid after", tc.f, err)
			}
			continue
		}
		if err != nil || ids(list) != tc.want || more != tc.wantMore {
			t.Errorf("%+v: %s more=%v err=%v; want %s more=%v", tc.f, ids(list), more, err, tc.want, tc.wantMore)
		}
	}
	if list, _, err := s.List(ctx, "bob", completions.Filter{}); err != nil || ids(list) != "chatcmpl-bob" {
		t.Errorf("bob's list: %s %v", ids(list), err)
	}
	if list, _, err := s.List(ctx, "", completions.Filter{}); err != nil || len(list) != 0 {
		t.Errorf("no owner's list: %s %v", ids(list), err)
	}
}

// TestStoreOwnersAndLifecycle retrieves, pages messages, updates metadata
// and deletes, each refused to another owner, and finds the completion
// again after the server restarts on the same folder.
func TestStoreOwnersAndLifecycle(t *testing.T) {
	dir := t.TempDir()
	s, stop := openStore(t, dir, 0)
	ctx := t.Context()
	id := "chatcmpl-abc.def" // a client's X-Request-Id may hold dots
	put(t, s, "alice", id, "m", 0, map[string]string{"k": "v"}, "one", "two", "three")

	if _, err := s.Get(ctx, "bob", id); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("bob's get: %v", err)
	}
	if _, _, err := s.Messages(ctx, "bob", id, completions.Page{}); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("bob's messages: %v", err)
	}
	if _, err := s.UpdateMetadata(ctx, "bob", id, nil); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("bob's update: %v", err)
	}
	if err := s.Delete(ctx, "bob", id); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("bob's delete: %v", err)
	}

	stop()
	s, _ = openStore(t, dir, 0)
	c, err := s.Get(ctx, "alice", id)
	if err != nil || c.Model != "m" || c.Metadata["k"] != "v" || !strings.Contains(string(c.Response), id) || c.Stored == 0 {
		t.Fatalf("after a restart: %+v %v", c, err)
	}
	msgs, more, err := s.Messages(ctx, "alice", id, completions.Page{Limit: 2})
	if err != nil || len(msgs) != 2 || !more || !strings.Contains(string(msgs[0]), `"one"`) {
		t.Errorf("messages page 1: %s more=%v %v", msgs, more, err)
	}
	msgs, more, err = s.Messages(ctx, "alice", id, completions.Page{Limit: 2, After: completions.MessageID(id, 1)})
	if err != nil || len(msgs) != 1 || more || !strings.Contains(string(msgs[0]), `"three"`) {
		t.Errorf("messages page 2: %s more=%v %v", msgs, more, err)
	}
	msgs, _, err = s.Messages(ctx, "alice", id, completions.Page{Desc: true})
	if err != nil || len(msgs) != 3 || !strings.Contains(string(msgs[0]), `"three"`) {
		t.Errorf("messages, descending: %s %v", msgs, err)
	}
	if _, _, err := s.Messages(ctx, "alice", id, completions.Page{After: "nope"}); err == nil {
		t.Error("messages after an unknown id: no error")
	}

	c, err = s.UpdateMetadata(ctx, "alice", id, map[string]string{"k": "w", "new": "1"})
	if err != nil || c.Metadata["k"] != "w" || c.Metadata["new"] != "1" {
		t.Fatalf("update: %+v %v", c, err)
	}
	if list, _, _ := s.List(ctx, "alice", completions.Filter{Metadata: map[string]string{"k": "w"}}); len(list) != 1 {
		t.Errorf("list by the new metadata: %s", ids(list))
	}
	if msgs, _, _ := s.Messages(ctx, "alice", id, completions.Page{}); len(msgs) != 3 {
		t.Errorf("messages after an update: %d", len(msgs))
	}
	if err := s.Delete(ctx, "alice", id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "alice", id); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if err := s.Delete(ctx, "alice", id); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestValidateMetadata(t *testing.T) {
	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprint(i)] = "v"
	}
	for _, tc := range []struct {
		md map[string]string
		ok bool
	}{
		{nil, true},
		{map[string]string{strings.Repeat("k", 64): strings.Repeat("é", 512)}, true},
		{map[string]string{strings.Repeat("k", 65): "v"}, false},
		{map[string]string{"k": strings.Repeat("v", 513)}, false},
		{many, false},
	} {
		err := completions.ValidateMetadata("metadata", tc.md)
		var inv *jobs.InvalidError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &inv) || inv.Param != "metadata")) {
			t.Errorf("%d pairs: %v", len(tc.md), err)
		}
	}
}

// TestStoreTTL: a completion stored under the default TTL is gone once a
// shorter --store-ttl, given at the next start, has passed.
func TestStoreTTL(t *testing.T) {
	dir := t.TempDir()
	s, stop := openStore(t, dir, 0)
	put(t, s, "", "chatcmpl-x", "m", 0, nil, "hi")
	stop()
	s, _ = openStore(t, dir, time.Second)
	if _, err := s.Get(t.Context(), "", "chatcmpl-x"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Get(t.Context(), "", "chatcmpl-x")
		if errors.Is(err, jobs.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still stored 15 s after a 1 s TTL: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUpdateRewritesBoth: an update writes the record, its messages and
// its index entry again, so all expire --store-ttl after it (the bucket's
// age counts from a key's last write).
func TestUpdateRewritesBoth(t *testing.T) {
	s, kv, _ := openStoreKV(t, t.TempDir(), 0)
	ctx := t.Context()
	put(t, s, "o", "chatcmpl-u", "m", 0, nil, "hi")
	revs := func() []uint64 {
		var out []uint64
		for _, key := range []string{completions.RecordKey("o", "chatcmpl-u"), completions.MessagesKey("o", "chatcmpl-u"), completions.IndexKey("o", "chatcmpl-u")} {
			_, r, err := kv.Get(ctx, key)
			if err != nil {
				t.Fatal(key, err)
			}
			out = append(out, r)
		}
		return out
	}
	before := revs()
	if _, err := s.UpdateMetadata(ctx, "o", "chatcmpl-u", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	for i, r := range revs() {
		if r <= slices.Max(before) {
			t.Errorf("key %d: revision %d after the update, %v before: all must be written again", i, r, before)
		}
	}
}

// TestListSkipsVanishedRecords: an index entry whose record is gone (a
// delete or an expiry between the two reads) is left out, and the page is
// filled from the next entries.
func TestListSkipsVanishedRecords(t *testing.T) {
	s, kv, _ := openStoreKV(t, t.TempDir(), 0)
	ctx := t.Context()
	for i := range 4 {
		put(t, s, "o", fmt.Sprintf("chatcmpl-%d", i), "m", int64(i+1), nil)
	}
	if err := kv.Delete(ctx, completions.RecordKey("o", "chatcmpl-1")); err != nil {
		t.Fatal(err)
	}
	list, more, err := s.List(ctx, "o", completions.Filter{Page: completions.Page{Limit: 2}})
	if err != nil || ids(list) != "chatcmpl-0,chatcmpl-2" || !more {
		t.Errorf("list: %s more=%v %v", ids(list), more, err)
	}
	list, more, err = s.List(ctx, "o", completions.Filter{Page: completions.Page{Limit: 2, After: "chatcmpl-2"}})
	if err != nil || ids(list) != "chatcmpl-3" || more {
		t.Errorf("next page: %s more=%v %v", ids(list), more, err)
	}
}
