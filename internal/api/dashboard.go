package api

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// dashboardFiles are the dashboard's static files, embedded: no build step,
// nothing fetched from elsewhere. The page reads only /v1/status and
// /v1/requests, with the key the user types when keys are configured.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardFS is dashboardFiles without its folder prefix.
var dashboardFS, _ = fs.Sub(dashboardFiles, "dashboard")

// dashboardCSP keeps the page to its own files and its own origin: no
// inline script, nothing loaded from elsewhere, never framed.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// wantsHTML reports whether r asks for a web page (a browser) rather than
// the plain answer tools probing an Ollama server expect.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// dashboardIndex serves the dashboard's page.
func (s *server) dashboardIndex(w http.ResponseWriter, r *http.Request) {
	s.serveDashboardFile(w, r, "index.html")
}

// dashboardFile serves GET /dashboard/{file}.
func (s *server) dashboardFile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/dashboard/")
	if name == "index.html" || !fs.ValidPath(name) || strings.Contains(name, "/") {
		writeError(w, errorf(CodeNotFound, "", "no route for %s %s", r.Method, r.URL.Path), 0)
		return
	}
	if _, err := fs.Stat(dashboardFS, name); err != nil {
		writeError(w, errorf(CodeNotFound, "", "no route for %s %s", r.Method, r.URL.Path), 0)
		return
	}
	s.serveDashboardFile(w, r, name)
}

func (s *server) serveDashboardFile(w http.ResponseWriter, r *http.Request, name string) {
	h := w.Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, dashboardFS, name)
}
