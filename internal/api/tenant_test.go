package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"courier/internal/jobs"
)

// TestTenantFromAPIKey: a request's bus tenant is a short hash of the API
// key it was sent with, never the key; each key has its own, a batch line
// or job run for the key's owner has the same one, and without keys every
// request has none.
func TestTenantFromAPIKey(t *testing.T) {
	const one, two = "sk-first-key-0123456789", "sk-second-key-0123456789"
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{APIKeys: []string{one, two}}, d)
	send := func(key string) string {
		t.Helper()
		w := do(s, "POST", "/v1/completions", `{"model":"tiny","prompt":"hi"}`, "Authorization", "Bearer "+key)
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		return rec.last().Tenant
	}
	sum := sha256.Sum256([]byte(one))
	if got, want := send(one), hex.EncodeToString(sum[:])[:16]; got != want {
		t.Fatalf("tenant %q, want %q (16 hex digits of the key's SHA-256)", got, want)
	}
	data, err := json.Marshal(rec.last())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), one) || strings.Contains(string(data), "sk-") {
		t.Fatalf("the bus request carries the API key: %s", data)
	}
	if a, b := send(one), send(two); a == b || a == "" || b == "" {
		t.Fatalf("tenants of two keys: %q and %q", a, b)
	}

	// A batch line or job runs with its owner's tenant.
	r := httptest.NewRequest("POST", "/v1/batches", nil)
	r.Header.Set("Authorization", "Bearer "+one)
	ctx := jobs.ContextWithOwner(t.Context(), s.owner(r))
	if status, _, body := s.Execute(ctx, "/v1/completions", []byte(`{"model":"tiny","prompt":"hi"}`)); status != 200 {
		t.Fatalf("execute: %d %s", status, body)
	}
	if r := rec.last(); !r.Background || r.Tenant != send(one) {
		t.Fatalf("background request: background %v tenant %q, want the key's tenant", r.Background, r.Tenant)
	}

	d, rec = scripted(helloChunks()...)
	s = newTestServer(t, Config{}, d)
	if w := do(s, "POST", "/v1/completions", `{"model":"tiny","prompt":"hi"}`); w.Code != 200 || rec.last().Tenant != "" {
		t.Fatalf("without keys: status %d tenant %q", w.Code, rec.last().Tenant)
	}
}
