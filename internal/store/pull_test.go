package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"courier/internal/store"
	"courier/internal/store/hubtest"
)

// writeRandom writes n pseudo-random bytes to path and returns their SHA-256.
func writeRandom(t *testing.T, path string, n int, seed uint64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// storeFiles lists every file under the store folder, relative paths.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// TestPullResume pulls a 30 MB file whose first download is cut half-way by
// the server; the second pull asks only for the rest with a Range request,
// and the result is verified against the listed SHA-256.
func TestPullResume(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	const size = 30 << 20
	sum := writeRandom(t, filepath.Join(hubDir, "acme/tiny-GGUF/tiny-Q8_0.gguf"), size, 1)
	writeRandom(t, filepath.Join(hubDir, "acme/tiny-GGUF/tiny-Q4_K_M.gguf"), 1000, 2)
	hub := hubtest.New(t, hubDir)
	s := store.Store{Dir: home}
	h := store.Hub{Endpoint: hub.URL}

	hub.CutNextDownload(size / 2)
	var last store.Progress
	_, err := s.Pull(context.Background(), h, "hf.co/acme/tiny-GGUF:q8_0", func(p store.Progress) { last = p })
	if err == nil {
		t.Fatal("the cut download succeeded")
	}
	partial := filepath.Join(home, "models/acme/tiny-GGUF/Q8_0/tiny-Q8_0.gguf.partial")
	st, err := os.Stat(partial)
	if err != nil {
		t.Fatalf("no .partial after the cut: %v", err)
	}
	if st.Size() != size/2 {
		t.Fatalf(".partial holds %d bytes, want %d", st.Size(), size/2)
	}
	if last.Done != size/2 || last.Total != size {
		t.Fatalf("last progress %+v", last)
	}
	if ms, _ := s.List(); len(ms) != 0 {
		t.Fatalf("an interrupted pull is listed: %+v", ms)
	}
	if inc, err := s.Incomplete(); err != nil || len(inc) != 1 || inc[0].Name != "acme/tiny-GGUF:Q8_0" || inc[0].Bytes != size/2 {
		t.Fatalf("Incomplete = %+v, %v", inc, err)
	}

	var first store.Progress
	m, err := s.Pull(context.Background(), h, "acme/tiny-GGUF:Q8_0", func(p store.Progress) {
		if first.File == "" {
			first = p
		}
		last = p
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := hub.Ranges(); !slices.Equal(got, []string{"", "bytes=15728640-"}) {
		t.Fatalf("Range headers %q, want none then bytes=15728640-", got)
	}
	if got := hub.Served(); got != size {
		t.Fatalf("the server sent %d bytes in all, want %d (half, then the rest)", got, size)
	}
	if first.Resumed != size/2 || last.Done != size {
		t.Fatalf("progress first %+v last %+v", first, last)
	}
	if m.Name != "acme/tiny-GGUF:Q8_0" || len(m.Files) != 1 || m.Files[0].SHA256 != sum || !m.Files[0].Verified || m.Size != size {
		t.Fatalf("model %+v", m)
	}
	if _, err := os.Stat(partial); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf(".partial left behind: %v", err)
	}
	if inc, _ := s.Incomplete(); len(inc) != 0 {
		t.Fatalf("a finished pull is incomplete: %+v", inc)
	}
	b, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		t.Fatal("stored file differs")
	}
	// A second pull of a stored model downloads nothing.
	if _, err := s.Pull(context.Background(), h, "acme/tiny-GGUF:Q8_0", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(hub.Ranges()); n != 2 {
		t.Fatalf("a stored model was downloaded again (%d downloads)", n)
	}
	for _, name := range []string{"acme/tiny-GGUF:Q8_0", "hf.co/acme/tiny-GGUF:q8_0", "acme/tiny-GGUF"} {
		p, err := s.Resolve(name)
		if err != nil || p != m.Path {
			t.Fatalf("Resolve(%q) = %q, %v; want %q", name, p, err, m.Path)
		}
	}
}

// TestPullWrongSHA: a file whose SHA-256 differs from the listed one is
// refused and nothing of the pull stays in the store.
func TestPullWrongSHA(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(hubDir, "acme/split/m-Q8_0-00001-of-00002.gguf"), 4000, 1)
	writeRandom(t, filepath.Join(hubDir, "acme/split/m-Q8_0-00002-of-00002.gguf"), 3000, 2)
	hub := hubtest.New(t, hubDir)
	hub.ListWrongSHA("acme/split/m-Q8_0-00002-of-00002.gguf")
	s := store.Store{Dir: home}
	_, err := s.Pull(context.Background(), store.Hub{Endpoint: hub.URL}, "acme/split:Q8_0", nil)
	if !errors.Is(err, store.ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if files := storeFiles(t, home); len(files) != 0 {
		t.Fatalf("the refused pull left %q", files)
	}
	if _, err := s.Resolve("acme/split:Q8_0"); err == nil || !strings.Contains(err.Error(), "courier pull") {
		t.Fatalf("Resolve after a refused pull: %v", err)
	}
}

// TestPullSplit fetches every part of a split GGUF, in order.
func TestPullSplit(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	for i, n := range []string{"00001", "00002", "00003"} {
		writeRandom(t, filepath.Join(hubDir, "acme/big/Q4_K_M/big-Q4_K_M-"+n+"-of-00003.gguf"), 1000+i, uint64(i))
	}
	writeRandom(t, filepath.Join(hubDir, "acme/big/big-Q8_0.gguf"), 10, 9)
	writeRandom(t, filepath.Join(hubDir, "acme/big/mmproj-big-F16.gguf"), 10, 9)
	writeRandom(t, filepath.Join(hubDir, "acme/big/README.md"), 10, 9)
	hub := hubtest.New(t, hubDir)
	s := store.Store{Dir: home}
	m, err := s.Pull(context.Background(), store.Hub{Endpoint: hub.URL}, "acme/big", nil) // default Q4_K_M
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	want := []string{"big-Q4_K_M-00001-of-00003.gguf", "big-Q4_K_M-00002-of-00003.gguf", "big-Q4_K_M-00003-of-00003.gguf"}
	if m.Name != "acme/big:Q4_K_M" || !slices.Equal(names, want) || m.Size != 3003 || filepath.Base(m.Path) != want[0] {
		t.Fatalf("model %s files %q size %d path %s", m.Name, names, m.Size, m.Path)
	}
}

// TestPullChoices: a quant that matches nothing or several files is an
// error listing the choices; so is a repository without the default quant.
func TestPullChoices(t *testing.T) {
	hubDir := t.TempDir()
	for _, f := range []string{"m-Q4_K_S.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf"} {
		writeRandom(t, filepath.Join(hubDir, "acme/m", f), 10, 1)
	}
	for _, f := range []string{"n-Q5_K_M.gguf", "n-Q8_0.gguf"} {
		writeRandom(t, filepath.Join(hubDir, "acme/n", f), 10, 1)
	}
	hub := hubtest.New(t, hubDir)
	s := store.Store{Dir: t.TempDir()}
	h := store.Hub{Endpoint: hub.URL}
	for _, tc := range []struct{ name, want string }{
		{"acme/m:Q4_K", `"Q4_K" matches several files of acme/m: acme/m:Q4_K_M (m-Q4_K_M.gguf), acme/m:Q4_K_S (m-Q4_K_S.gguf)`},
		{"acme/m:Q6_K", `acme/m has no file matching "Q6_K"; choices: acme/m:Q4_K_M (m-Q4_K_M.gguf), acme/m:Q4_K_S (m-Q4_K_S.gguf), acme/m:Q8_0 (m-Q8_0.gguf)`},
		{"acme/n", `acme/n holds several models and none is Q4_K_M; name one: acme/n:Q5_K_M (n-Q5_K_M.gguf), acme/n:Q8_0 (n-Q8_0.gguf)`},
		{"acme/missing:Q8_0", `HTTP 404 (no such repository or file)`},
		{"acme/m/x:Q8_0", `want ORG/REPO[:QUANT]`},
		{"../m", `not a valid name part`},
	} {
		_, err := s.Pull(context.Background(), h, tc.name, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Pull(%q) = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	m, err := s.Pull(context.Background(), h, "acme/m", nil)
	if err != nil || m.Name != "acme/m:Q4_K_M" {
		t.Fatalf("default quant: %v %+v", err, m)
	}
}

// TestPullToken sends HF_TOKEN's value as a bearer token.
func TestPullToken(t *testing.T) {
	hubDir := t.TempDir()
	writeRandom(t, filepath.Join(hubDir, "acme/gated/g-Q8_0.gguf"), 100, 1)
	hub := hubtest.New(t, hubDir)
	hub.RequireToken("hf_secret")
	s := store.Store{Dir: t.TempDir()}
	_, err := s.Pull(context.Background(), store.Hub{Endpoint: hub.URL}, "acme/gated", nil)
	if err == nil || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("without a token: %v", err)
	}
	if _, err := s.Pull(context.Background(), store.Hub{Endpoint: hub.URL, Token: "hf_secret"}, "acme/gated", nil); err != nil {
		t.Fatal(err)
	}
}

// TestPullURL pulls a direct URL; its name is the file's stem.
func TestPullURL(t *testing.T) {
	hubDir := t.TempDir()
	writeRandom(t, filepath.Join(hubDir, "acme/u/Some-Model.Q8_0.gguf"), 5000, 1)
	hub := hubtest.New(t, hubDir)
	s := store.Store{Dir: t.TempDir()}
	u := hub.URL + "/acme/u/resolve/main/Some-Model.Q8_0.gguf"
	hub.CutNextDownload(2000)
	if _, err := s.Pull(context.Background(), store.Hub{}, u, nil); err == nil {
		t.Fatal("cut download succeeded")
	}
	m, err := s.Pull(context.Background(), store.Hub{}, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "Some-Model.Q8_0:latest" || m.Size != 5000 || m.Files[0].Verified {
		t.Fatalf("model %+v", m)
	}
	if got := hub.Ranges(); !slices.Equal(got, []string{"", "bytes=2000-"}) {
		t.Fatalf("ranges %q", got)
	}
	for _, name := range []string{"Some-Model.Q8_0", u} {
		if p, err := s.Resolve(name); err != nil || p != m.Path {
			t.Fatalf("Resolve(%q) = %q, %v", name, p, err)
		}
	}
}

// TestListRemove lists stored models and removes one, leaving no folder.
func TestListRemove(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(hubDir, "acme/m/m-Q8_0.gguf"), 100, 1)
	writeRandom(t, filepath.Join(hubDir, "acme/m/m-Q4_K_M.gguf"), 50, 2)
	hub := hubtest.New(t, hubDir)
	s := store.Store{Dir: home}
	h := store.Hub{Endpoint: hub.URL}
	for _, n := range []string{"acme/m:Q8_0", "acme/m:Q4_K_M"} {
		if _, err := s.Pull(context.Background(), h, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s.List()
	if err != nil || len(ms) != 2 || ms[0].Name != "acme/m:Q4_K_M" || ms[1].Name != "acme/m:Q8_0" {
		t.Fatalf("List = %+v, %v", ms, err)
	}
	if p, err := s.Resolve("acme/m"); err != nil || p != ms[0].Path {
		t.Fatalf("Resolve without tag prefers Q4_K_M: %q %v", p, err)
	}
	for _, n := range []string{"acme/m:q4_k_m", "acme/m:Q8_0"} {
		if _, err := s.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Remove("acme/m:Q8_0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if files := storeFiles(t, home); len(files) != 0 {
		t.Fatalf("left %q", files)
	}
	if ents, _ := os.ReadDir(filepath.Join(home, "models")); len(ents) != 0 {
		t.Fatalf("empty folders left: %v", ents)
	}
}

// TestResolvePathWins: an existing path is taken as it is, even when it
// also parses as a name.
func TestResolvePathWins(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.MkdirAll("acme", 0o755)
	os.WriteFile("acme/m", []byte("x"), 0o644)
	s := store.Store{Dir: t.TempDir()}
	if p, err := s.Resolve("acme/m"); err != nil || p != "acme/m" {
		t.Fatalf("Resolve = %q, %v", p, err)
	}
	if _, err := s.Resolve("missing.gguf"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing path: %v", err)
	}
}

func TestHome(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	for _, tc := range []struct {
		lookup func(string) (string, bool)
		want   string
	}{
		{env("COURIER_HOME", "/c", "HOME", "/h"), "/c"},
		{env("XDG_CACHE_HOME", "/x", "HOME", "/h"), "/x/courier"},
		{env("HOME", "/h"), "/h/.cache/courier"},
		{env(), ""},
	} {
		if got := store.Home(tc.lookup); got != tc.want {
			t.Errorf("Home = %q, want %q", got, tc.want)
		}
	}
}

// TestPullLocked: a second pull of a model whose pull is running fails at
// once instead of writing the same .partial file.
func TestPullLocked(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(hubDir, "acme/m/m-Q8_0.gguf"), 100, 1)
	hub := hubtest.New(t, hubDir)
	dir := filepath.Join(home, "models/acme/m/Q8_0")
	os.MkdirAll(dir, 0o755)
	f, err := os.OpenFile(filepath.Join(dir, ".pull.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	s := store.Store{Dir: home}
	h := store.Hub{Endpoint: hub.URL}
	if _, err := s.Pull(context.Background(), h, "acme/m:Q8_0", nil); !errors.Is(err, store.ErrPullRunning) {
		t.Fatalf("err = %v, want ErrPullRunning", err)
	}
	f.Close()
	if _, err := s.Pull(context.Background(), h, "acme/m:Q8_0", nil); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveIncomplete deletes an unfinished pull by name.
func TestRemoveIncomplete(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	writeRandom(t, filepath.Join(hubDir, "acme/m/m-Q8_0.gguf"), 5000, 1)
	hub := hubtest.New(t, hubDir)
	hub.CutNextDownload(1000)
	s := store.Store{Dir: home}
	if _, err := s.Pull(context.Background(), store.Hub{Endpoint: hub.URL}, "acme/m:Q8_0", nil); err == nil {
		t.Fatal("cut pull succeeded")
	}
	if _, err := s.Remove("acme/m:Q8_0"); err != nil {
		t.Fatal(err)
	}
	if files := storeFiles(t, home); len(files) != 0 {
		t.Fatalf("left %q", files)
	}
}
