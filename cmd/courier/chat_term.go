package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/term"
)

// termSource reads chat lines on a terminal with golang.org/x/term's line
// editor: arrows, Home/End, Ctrl-A/E/K/U/W, and the history of earlier
// lines on Up/Down. The terminal is raw only while a line is read, so
// Ctrl-C during an answer is still SIGINT (which stops the answer).
type termSource struct {
	fd   int
	in   *ctrlCReader
	out  io.Writer
	t    *term.Terminal
	hist term.History
}

// newTermSource opens the line editor on in, a terminal, echoing to out.
func newTermSource(in *os.File, out io.Writer) (*termSource, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("not a terminal")
	}
	s := &termSource{fd: fd, in: &ctrlCReader{r: in}, out: out}
	s.reset()
	return s, nil
}

// reset starts a fresh editor (no half-typed line) that keeps the history.
func (s *termSource) reset() {
	s.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{s.in, s.out}, "")
	if s.hist != nil {
		s.t.History = s.hist
	}
	s.hist = s.t.History
}

func (s *termSource) line(prompt string) (string, error) {
	st, err := term.MakeRaw(s.fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(s.fd, st)
	if w, h, err := term.GetSize(s.fd); err == nil {
		s.t.SetSize(w, h)
	}
	s.t.SetPrompt(prompt)
	l, err := s.t.ReadLine()
	if errors.Is(err, io.EOF) && s.in.ctrlC.Swap(false) {
		// The editor answers Ctrl-C as it answers Ctrl-D; the reader saw
		// which it was. Drop the line, as a shell does.
		io.WriteString(s.out, "^C\r\n")
		s.reset()
		return "", errInterrupted
	}
	s.in.ctrlC.Store(false)
	return l, err
}

// ctrlCReader notes a Ctrl-C byte in what it reads.
type ctrlCReader struct {
	r     io.Reader
	ctrlC atomic.Bool
}

func (c *ctrlCReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if bytes.IndexByte(p[:n], 3) >= 0 {
		c.ctrlC.Store(true)
	}
	return n, err
}
