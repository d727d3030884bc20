package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestProgress: on a terminal a bar redrawn in place and ended with a
// newline; elsewhere a plain line per 10%, nothing for an unknown total.
func TestProgress(t *testing.T) {
	var tty bytes.Buffer
	p := &progress{w: &tty, tty: true, label: "m.gguf", unit: humanBytes, lastTen: -1}
	p.update(512<<10, 1<<20, true)
	p.update(1<<20, 1<<20, true)
	p.done()
	want := "\rm.gguf [===============               ]  50% 512.0 KiB/1.0 MiB\x1b[K" +
		"\rm.gguf [==============================] 100% 1.0 MiB/1.0 MiB\x1b[K\n"
	if tty.String() != want {
		t.Errorf("terminal:\n%q\nwant\n%q", tty.String(), want)
	}

	var log bytes.Buffer
	p = &progress{w: &log, label: "m.gguf", unit: humanBytes, lastTen: -1}
	for done := int64(0); done <= 1000; done += 50 {
		p.update(done, 1000, false)
	}
	p.update(7, 0, false) // unknown total: nothing
	p.done()
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if len(lines) != 11 || lines[0] != "m.gguf: 0% (0 B of 1000 B)" || lines[10] != "m.gguf: 100% (1000 B of 1000 B)" || strings.Contains(log.String(), "\r") {
		t.Errorf("log:\n%s", log.String())
	}
}
