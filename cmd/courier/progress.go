package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether f is a terminal (not a pipe, file or
// /dev/null): progress bars are drawn only there.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress reports a long operation on w: on a terminal a bar redrawn in
// place (at most every 100 ms), elsewhere a plain line at every 10%, so logs
// stay readable. A zero total means unknown.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	unit  func(int64) string // renders an amount; humanBytes by default

	lastDraw time.Time
	lastTen  int  // the last tenth reported in plain mode
	drawn    bool // a bar line is on screen, not yet ended
}

func newProgress(f *os.File, label string) *progress {
	return &progress{w: f, tty: isTerminal(f), label: label, unit: humanBytes, lastTen: -1}
}

// update reports done of total; force draws even when throttled.
func (p *progress) update(done, total int64, force bool) {
	if !p.tty {
		if total <= 0 {
			return
		}
		ten := int(done * 10 / total)
		if ten > p.lastTen {
			p.lastTen = ten
			fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.label, ten*10, p.unit(done), p.unit(total))
		}
		return
	}
	now := time.Now()
	if !force && now.Sub(p.lastDraw) < 100*time.Millisecond {
		return
	}
	p.lastDraw = now
	p.drawn = true
	if total <= 0 {
		fmt.Fprintf(p.w, "\r%s: %s\x1b[K", p.label, p.unit(done))
		return
	}
	const width = 30
	n := int(done * width / total)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s/%s\x1b[K", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		done*100/total, p.unit(done), p.unit(total))
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// humanBytes renders a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
