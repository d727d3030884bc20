package logjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// both logs r through a Handler and through slog's JSONHandler, each
// derived with the same calls, and returns the two outputs.
func both(opts *slog.HandlerOptions, derive func(slog.Handler) slog.Handler, r slog.Record) (got, want string) {
	var g, w bytes.Buffer
	hg, hw := derive(New(&g, opts)), derive(slog.NewJSONHandler(&w, opts))
	ctx := context.Background()
	if hg.Enabled(ctx, r.Level) != hw.Enabled(ctx, r.Level) {
		return "enabled differs", ""
	}
	if hg.Enabled(ctx, r.Level) {
		_ = hg.Handle(ctx, r.Clone())
		_ = hw.Handle(ctx, r.Clone())
	}
	return g.String(), w.String()
}

func noDerive(h slog.Handler) slog.Handler { return h }

// FuzzMatchesSlog: whatever the attributes, the handler writes what
// slog's JSONHandler writes, byte for byte, with and without With.
func FuzzMatchesSlog(f *testing.F) {
	f.Add("request", "0123456789abcdef", "w1", int64(200), uint64(7), 1000.123, true, int64(1500), int64(4), "role", "serve")
	f.Add("q\"\\\n\r\t\x01\x7f<>&", "\xff\xfe bad", "\u2028\u2029é", int64(-1), uint64(math.MaxUint64), 1e-7, false, int64(-5), int64(-4), "", "x")
	f.Add("", "", "", int64(0), uint64(0), 0.0, false, int64(0), int64(9), "k", "")
	f.Add("m", "s", "t", int64(math.MinInt64), uint64(1), 1e21, true, int64(math.MaxInt64), int64(0), "a", "b")
	f.Add("m", "s", "t", int64(3), uint64(1), -123456789.0625, true, int64(1), int64(2), "a", "b")
	f.Fuzz(func(t *testing.T, msg, s1, s2 string, i int64, u uint64, fl float64, bo bool, d int64, lv int64, wk, wv string) {
		tm := time.Date(2026, 12, 7, 6, 57, 1, 123456789, time.UTC)
		r := slog.NewRecord(tm, slog.Level(lv%12), msg, 0)
		r.AddAttrs(
			slog.String("request_id", s1),
			slog.String(s2, s1),
			slog.Int64("status", i),
			slog.Uint64("u", u),
			slog.Float64("total_ms", fl),
			slog.Float64("ms", float64(i)/1000),
			slog.Bool("b", bo),
			slog.Duration("d", time.Duration(d)),
			slog.Any("workers", []string{s1, s2}),
			slog.Any("none", []string(nil)),
			slog.Any("empty", []string{}),
		)
		for _, derive := range []func(slog.Handler) slog.Handler{
			noDerive,
			func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String(wk, wv)}) },
			func(h slog.Handler) slog.Handler {
				return h.WithAttrs([]slog.Attr{slog.Float64(wk, fl), slog.Int64("n", i)})
			},
		} {
			if got, want := both(&slog.HandlerOptions{Level: slog.LevelDebug}, derive, r); got != want {
				t.Fatalf("wrote\n%s\nslog wrote\n%s", got, want)
			}
		}
	})
}

// TestSlowPathsMatchSlog: the records and handlers it leaves to slog's
// handler come out as slog writes them.
func TestSlowPathsMatchSlog(t *testing.T) {
	tm := time.Date(2026, 12, 7, 6, 57, 1, 0, time.UTC)
	rec := func(as ...slog.Attr) slog.Record {
		r := slog.NewRecord(tm, slog.LevelInfo, "m", 0)
		r.AddAttrs(as...)
		return r
	}
	cases := []struct {
		name   string
		opts   *slog.HandlerOptions
		derive func(slog.Handler) slog.Handler
		r      slog.Record
	}{
		{"nan", nil, noDerive, rec(slog.Float64("f", math.NaN()))},
		{"inf", nil, noDerive, rec(slog.Float64("f", math.Inf(-1)))},
		{"time", nil, noDerive, rec(slog.Time("t", tm))},
		{"group", nil, noDerive, rec(slog.Group("g", slog.Int("a", 1)))},
		{"empty group", nil, noDerive, rec(slog.Group("g"))},
		{"error", nil, noDerive, rec(slog.Any("err", errors.New("boom")))},
		{"map", nil, noDerive, rec(slog.Any("m", map[string]int{"a": 1}))},
		{"no key", nil, noDerive, rec(slog.Int("", 1), slog.Attr{})},
		{"zero time", nil, noDerive, slog.NewRecord(time.Time{}, slog.LevelWarn, "m", 0)},
		{"year 10000", nil, noDerive, slog.NewRecord(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m", 0)},
		{"with group", nil, func(h slog.Handler) slog.Handler { return h.WithGroup("g").WithAttrs([]slog.Attr{slog.Int("a", 1)}) }, rec(slog.Int("b", 2))},
		{"with empty group", nil, func(h slog.Handler) slog.Handler { return h.WithGroup("") }, rec(slog.Int("b", 2))},
		{"with time", nil, func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.Time("t", tm)}) }, rec(slog.Int("b", 2))},
		{"replace", &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "b" {
				a.Key = "c"
			}
			return a
		}}, noDerive, rec(slog.Int("b", 2))},
		{"source", &slog.HandlerOptions{AddSource: true}, noDerive, rec(slog.Int("b", 2))},
		{"below level", &slog.HandlerOptions{Level: slog.LevelWarn}, noDerive, rec(slog.Int("b", 2))},
	}
	for _, c := range cases {
		if got, want := both(c.opts, c.derive, c.r); got != want {
			t.Errorf("%s: wrote\n%s\nslog wrote\n%s", c.name, got, want)
		}
	}
}

// TestLinesDoNotInterleave: lines from both paths, written at once from
// many goroutines through handlers derived from one, arrive whole.
func TestLinesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	base := New(&buf, nil)
	fast, slow := base.WithAttrs([]slog.Attr{slog.String("p", "f")}), base.WithGroup("g")
	const n = 200
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			l := slog.New(fast)
			if g%2 == 1 {
				l = slog.New(slow)
			}
			for i := range n {
				l.Info("line", "i", i, "t", time.Duration(i), "pad", strings.Repeat("x", 300))
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 4*n {
		t.Fatalf("%d lines, want %d", len(lines), 4*n)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("not one JSON line: %q", l)
		}
	}
}

// TestRequestLineAllocs: a request-like line on the fast path allocates
// nothing in the handler (the pooled buffer).
func TestRequestLineAllocs(t *testing.T) {
	h := New(discard{}, nil).WithAttrs([]slog.Attr{slog.String("role", "serve")})
	r := requestRecord()
	allocs := testing.AllocsPerRun(1000, func() { _ = h.Handle(context.Background(), r) })
	if allocs != 0 {
		t.Fatalf("%v allocations per line", allocs)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// requestRecord is a generation's request line as the gateway logs it.
func requestRecord() slog.Record {
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("request_id", "0123456789abcdef01234567"), slog.String("route", "chat_completions"),
		slog.Int("status", 200), slog.Float64("total_ms", 1000.123), slog.String("model", "m"),
		slog.String("tenant", "0123456789abcdef"), slog.Any("workers", []string{"w1"}), slog.Int("attempts", 1),
		slog.String("finish_reason", "stop"), slog.Int("prompt_tokens", 12), slog.Int("completion_tokens", 100),
		slog.Float64("queue_wait_ms", 1), slog.Float64("ttft_ms", 20))
	return r
}

// BenchmarkRequestLine: a generation's request line through this handler
// and through slog's JSONHandler, both to a writer that keeps nothing.
func BenchmarkRequestLine(b *testing.B) {
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{{"logjson", New(discard{}, nil)}, {"slog", slog.NewJSONHandler(discard{}, nil)}} {
		b.Run(c.name, func(b *testing.B) {
			h := c.h.WithAttrs([]slog.Attr{slog.String("role", "serve")})
			r := requestRecord()
			b.ReportAllocs()
			for b.Loop() {
				_ = h.Handle(context.Background(), r)
			}
		})
	}
}
