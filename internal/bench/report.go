package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// WriteText writes rep as a table, one row per level, followed by the
// errors of each level that had any and the requests' timings of each
// level that has them (Config.PerRequest).
func WriteText(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "courier bench: %s model=%s stream=%v chat=%v\n\n", rep.URL, rep.Model, rep.Stream, rep.Chat)
	fmt.Fprintf(&b, "%5s %6s %6s %8s %10s  %-23s  %-23s  %-23s\n",
		"conc", "ok", "errors", "req/s", "out tok/s", "TTFT ms p50/p90/p99", "ITL ms p50/p90/p99", "E2E ms p50/p90/p99")
	for _, l := range rep.Levels {
		fmt.Fprintf(&b, "%5d %6d %6d %8.2f %10.1f  %-23s  %-23s  %-23s\n",
			l.Concurrency, l.Succeeded, l.Requests-l.Succeeded, l.RequestsPerSec, l.OutputTokPerSec,
			triple(l.TTFT), triple(l.ITL), triple(l.E2E))
	}
	for _, l := range rep.Levels {
		if len(l.Errors) == 0 {
			continue
		}
		kinds := make([]string, 0, len(l.Errors))
		for k := range l.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		fmt.Fprintf(&b, "\nerrors at concurrency %d:", l.Concurrency)
		for _, k := range kinds {
			fmt.Fprintf(&b, " %s=%d", k, l.Errors[k])
		}
		b.WriteByte('\n')
	}
	for _, l := range rep.Levels {
		if len(l.PerRequest) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nrequests at concurrency %d:\n%8s %10s %10s %10s\n", l.Concurrency, "request", "start ms", "TTFT ms", "E2E ms")
		for _, r := range l.PerRequest {
			if r.Error != "" {
				fmt.Fprintf(&b, "%8d %10.1f %s\n", r.Index, r.StartMs, r.Error)
				continue
			}
			ttft := "-"
			if r.TTFTMs > 0 {
				ttft = fmt.Sprintf("%.1f", r.TTFTMs)
			}
			fmt.Fprintf(&b, "%8d %10.1f %10s %10.1f\n", r.Index, r.StartMs, ttft, r.E2EMs)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// triple formats p50/p90/p99, or "-" when there are no samples.
func triple(p *Percentiles) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f/%.1f", p.P50, p.P90, p.P99)
}

// ProgressBar draws a one-line progress bar on a terminal, redrawing at
// most every 100 ms. Safe for concurrent use.
type ProgressBar struct {
	w     io.Writer
	width int

	mu    sync.Mutex
	last  time.Time // guarded by mu
	level int       // guarded by mu
}

// NewProgressBar returns a bar of width cells drawn on w.
func NewProgressBar(w io.Writer, width int) *ProgressBar {
	return &ProgressBar{w: w, width: max(width, 10)}
}

// Update draws the state of a level; it is a Config.Progress function.
func (p *ProgressBar) Update(level, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if level == p.level && done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.level, p.last = level, now
	filled := 0
	if total > 0 {
		filled = done * p.width / total
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", p.width-filled)
	fmt.Fprintf(p.w, "\rconcurrency %-4d %s %d/%d", level, bar, done, total)
	if done >= total {
		io.WriteString(p.w, "\n")
	}
}
