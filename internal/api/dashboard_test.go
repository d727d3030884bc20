package api

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestDashboardRoutes(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	s := newTestServer(t, Config{APIKeys: []string{"k"}}, d)
	// A browser gets the page, without a key (the page asks for one).
	w := do(s, http.MethodGet, "/", "", "Accept", "text/html,application/xhtml+xml")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<script src="/dashboard/app.js"`) ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET / as a browser: %d %v %.200s", w.Code, w.Header(), w.Body)
	}
	// A tool probing an Ollama server gets the plain answer.
	if w := do(s, http.MethodGet, "/", ""); !strings.Contains(w.Body.String(), "Courier is running") {
		t.Fatalf("GET / as a tool: %d %s", w.Code, w.Body)
	}
	for path, ctype := range map[string]string{"/dashboard/app.js": "text/javascript", "/dashboard/style.css": "text/css"} {
		w := do(s, http.MethodGet, path, "")
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	for _, path := range []string{"/dashboard/nope.js", "/dashboard/../server.go", "/dashboard/", "/dashboard/index.html"} {
		if w := do(s, http.MethodGet, path, ""); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d", path, w.Code)
		}
	}
	if w := do(s, http.MethodPost, "/dashboard/app.js", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST a dashboard file: %d", w.Code)
	}
}

// TestDashboardLoadsNothingFromElsewhere: no CDN, no remote script, style
// or font; the page fetches only its own origin's JSON.
func TestDashboardLoadsNothingFromElsewhere(t *testing.T) {
	remote := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["'` + "`" + `]https?:`)
	err := fs.WalkDir(dashboardFS, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(dashboardFS, path)
		if err != nil {
			return err
		}
		if m := remote.Find(b); m != nil {
			t.Errorf("%s loads from elsewhere: %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
