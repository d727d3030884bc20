package api

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// NewHTTPServer returns the http.Server for h with cfg's header and idle
// timeouts. It sets no ReadTimeout or WriteTimeout: the body deadline is
// set per request by the handler (and lifted once the body is read), so a
// streamed answer is never cut. errorLog may be nil.
func NewHTTPServer(cfg Config, h http.Handler, errorLog *log.Logger) *http.Server {
	cfg = cfg.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          errorLog,
	}
}

// Listener returns ln limited to cfg.MaxConns open connections.
func Listener(cfg Config, ln net.Listener) net.Listener {
	cfg = cfg.withDefaults()
	if cfg.MaxConns < 0 {
		return ln
	}
	return netutil.LimitListener(ln, cfg.MaxConns)
}

// bodyDeadline sets the read deadline of r's body (ReadTimeout, or
// UploadTimeout for uploads) and lifts it when the body has been read to
// its end. Requests without a body get none: the server's background read
// that notices a client leaving must not time out under a long answer.
func (s *server) bodyDeadline(w http.ResponseWriter, r *http.Request, l *liftOnEOF) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	d := s.cfg.ReadTimeout
	if r.URL.Path == "/v1/files" {
		d = s.cfg.UploadTimeout
	}
	l.rc = *http.NewResponseController(w)
	if err := l.rc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return // not a network connection (tests, Execute)
	}
	l.ReadCloser = r.Body
	r.Body = l
}

// liftOnEOF clears the connection's read deadline once the body is read.
// bodyDeadline fills in the one ServeHTTP keeps with the request.
type liftOnEOF struct {
	io.ReadCloser
	rc   http.ResponseController
	done bool
}

func (l *liftOnEOF) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !l.done {
		l.done = true
		_ = l.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
