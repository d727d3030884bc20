// Package hubtest is a stand-in for the Hugging Face Hub in tests: an HTTP
// server on loopback that serves a folder's ORG/REPO/... files through the
// Hub's tree listing and resolve endpoints, with Range support, and can cut
// a download half-way or list a wrong SHA-256.
package hubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Hub is a running stand-in. Its fields may be changed between pulls.
type Hub struct {
	URL string
	dir string

	mu sync.Mutex
	// cutAfter, when > 0, makes the next download stop after that many
	// bytes by closing the connection; guarded by mu.
	cutAfter int64
	// wrongSHA lists paths ("ORG/REPO/FILE") whose listed SHA-256 is
	// wrong; guarded by mu.
	wrongSHA map[string]bool
	// ranges records the Range header of every download ("" for none);
	// guarded by mu.
	ranges []string
	// served counts the body bytes sent by downloads; guarded by mu.
	served int64
	// token, when set, is required as a bearer token; guarded by mu.
	token string
}

// New serves dir (holding ORG/REPO/FILE) until the test ends.
func New(t testing.TB, dir string) *Hub {
	h := &Hub{dir: dir, wrongSHA: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

// CutNextDownload makes the next download close its connection after n
// bytes of body.
func (h *Hub) CutNextDownload(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cutAfter = n
}

// ListWrongSHA makes the tree listing give path (ORG/REPO/FILE) a wrong
// SHA-256.
func (h *Hub) ListWrongSHA(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wrongSHA[path] = true
}

// RequireToken makes every request need "Authorization: Bearer tok".
func (h *Hub) RequireToken(tok string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.token = tok
}

// Ranges returns the Range headers of the downloads so far.
func (h *Hub) Ranges() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ranges...)
}

// Served returns the body bytes the downloads sent so far.
func (h *Hub) Served() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served
}

type entry struct {
	Type string `json:"type"`
	OID  string `json:"oid"`
	Size int64  `json:"size"`
	Path string `json:"path"`
	LFS  *lfs   `json:"lfs,omitempty"`
}

type lfs struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	tok := h.token
	h.mu.Unlock()
	if tok != "" && r.Header.Get("Authorization") != "Bearer "+tok {
		http.Error(w, `{"error":"Invalid credentials"}`, http.StatusUnauthorized)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/models/"); ok {
		repo, _, ok := strings.Cut(rest, "/tree/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.tree(w, repo)
		return
	}
	// /ORG/REPO/resolve/REV/PATH
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 5)
	if len(parts) < 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	h.resolve(w, r, parts[0]+"/"+parts[1], parts[4])
}

func (h *Hub) tree(w http.ResponseWriter, repo string) {
	root := filepath.Join(h.dir, filepath.FromSlash(repo))
	if _, err := os.Stat(root); err != nil {
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	var out []entry
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		sum, size := digest(p)
		h.mu.Lock()
		if h.wrongSHA[repo+"/"+rel] {
			sum = strings.Repeat("0", 64)
		}
		h.mu.Unlock()
		out = append(out, entry{Type: "file", OID: "0123456789abcdef0123456789abcdef01234567", Size: size, Path: rel,
			LFS: &lfs{OID: sum, Size: size, PointerSize: 134}})
		return nil
	})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (h *Hub) resolve(w http.ResponseWriter, r *http.Request, repo, p string) {
	f, err := os.Open(filepath.Join(h.dir, filepath.FromSlash(repo), filepath.FromSlash(p)))
	if err != nil {
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, _ := f.Stat()
	h.mu.Lock()
	h.ranges = append(h.ranges, r.Header.Get("Range"))
	cut := h.cutAfter
	h.cutAfter = 0
	h.mu.Unlock()
	cw := &countingWriter{ResponseWriter: w, h: h, cut: cut}
	http.ServeContent(cw, r, st.Name(), st.ModTime(), f)
}

// countingWriter counts body bytes and, when cut > 0, aborts the response
// (closing the connection) once cut bytes went out.
type countingWriter struct {
	http.ResponseWriter
	h    *Hub
	cut  int64
	sent int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.cut > 0 && c.sent+int64(len(b)) > c.cut {
		b = b[:c.cut-c.sent]
		n, _ := c.ResponseWriter.Write(b)
		c.add(n)
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	n, err := c.ResponseWriter.Write(b)
	c.add(n)
	return n, err
}

func (c *countingWriter) add(n int) {
	c.sent += int64(n)
	c.h.mu.Lock()
	c.h.served += int64(n)
	c.h.mu.Unlock()
}

func digest(p string) (string, int64) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0
	}
	defer f.Close()
	s := sha256.New()
	n, _ := io.Copy(s, f)
	return hex.EncodeToString(s.Sum(nil)), n
}
