package logjson

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"courier/internal/jsonstr"
)

// Handler is a slog.Handler that writes what slog.NewJSONHandler with the
// same writer and options writes. Safe for concurrent use.
type Handler struct {
	slow  slog.Handler // slog's JSONHandler with the same With and WithGroup calls
	out   *lockedWriter
	level slog.Leveler
	pre   []byte // the With attributes, formatted, each after a comma
	fast  bool   // every record whose attributes are simple is formatted here
}

var _ slog.Handler = (*Handler)(nil)

// lockedWriter orders whole lines from both of a Handler's paths (and
// from the handlers With and WithGroup derive from it).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// New returns a Handler that writes to w with opts (nil: the defaults),
// as slog.NewJSONHandler(w, opts) does.
func New(w io.Writer, opts *slog.HandlerOptions) *Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	out := &lockedWriter{w: w}
	var level slog.Leveler = slog.LevelInfo
	if opts.Level != nil {
		level = opts.Level
	}
	return &Handler{
		slow:  slog.NewJSONHandler(out, opts),
		out:   out,
		level: level,
		fast:  opts.ReplaceAttr == nil && !opts.AddSource,
	}
}

// Enabled reports whether level is at or above the handler's minimum.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// WithAttrs returns a handler whose lines carry as after the message.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.slow = h.slow.WithAttrs(as)
	if h.fast {
		pre := append([]byte(nil), h.pre...)
		for _, a := range as {
			var ok bool
			if pre, ok = appendAttr(pre, a); !ok {
				h2.fast = false
				break
			}
		}
		h2.pre = pre
	}
	return &h2
}

// WithGroup returns a handler whose attributes go in the group name;
// that handler leaves every line to slog's (which opens a group even for
// an empty name; slog.Logger.WithGroup does not call it then).
func (h *Handler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.slow, h2.fast, h2.pre = h.slow.WithGroup(name), false, nil
	return &h2
}

// bufPool holds line buffers; one longer than maxKept is not kept.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxKept = 16 << 10

// Handle writes r as one line.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if !h.fast {
		return h.slow.Handle(ctx, r)
	}
	bp := bufPool.Get().(*[]byte)
	b, ok := h.appendRecord((*bp)[:0], r)
	var err error
	if ok {
		_, err = h.out.Write(b)
	}
	if cap(b) <= maxKept {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	if !ok {
		return h.slow.Handle(ctx, r)
	}
	return err
}

// appendRecord appends r's line to b, or reports false when some part of
// it is not simple (slog's handler writes it then).
func (h *Handler) appendRecord(b []byte, r slog.Record) ([]byte, bool) {
	b = append(b, '{')
	if !r.Time.IsZero() {
		t := r.Time.Round(0)
		if y := t.Year(); y < 0 || y >= 10000 {
			return b, false
		}
		b = append(b, `"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = jsonstr.AppendSlog(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = jsonstr.AppendSlog(b, r.Message)
	b = append(b, h.pre...)
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		b, ok = appendAttr(b, a)
		return ok
	})
	return append(b, "}\n"...), ok
}

// appendAttr appends ,"key":value for a simple attribute, or reports
// false.
func appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	if a.Key == "" {
		return b, false // slog drops an empty one and writes others: leave it to slog
	}
	b = append(b, ',')
	b = jsonstr.AppendSlog(b, a.Key)
	b = append(b, ':')
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		b = jsonstr.AppendSlog(b, v.String())
	case slog.KindInt64:
		b = strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		b = strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		b = strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		b = strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, false
		}
		b = appendFloat(b, f)
	case slog.KindAny:
		ss, isStrings := v.Any().([]string)
		if !isStrings {
			return b, false
		}
		if ss == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, s := range ss {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, s)
		}
		b = append(b, ']')
	default:
		return b, false
	}
	return b, true
}

// appendFloat appends a finite f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 as e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
