// Package logjson is the JSON log handler a node writes its log with
// (--log-format json): the lines log/slog's JSONHandler writes, byte for
// byte, for a fraction of its CPU.
//
// slog's JSONHandler formats every float and every value of kind Any
// through encoding/json (its pooled Encoder, reflection, a copy); a
// request's log line has three or four floats (total_ms, queue_wait_ms,
// ttft_ms) and a list of workers, so it cost about 15 µs of CPU on the
// request's goroutine, right after the answer was flushed and while the
// client still wanted a core (docs/fabric.md, "What the floor is made
// of, and where the aim stands").
//
// Handler formats strings, integers, finite floats, booleans, durations
// and string slices itself, as slog's handler writes them (floats and
// string slices as encoding/json does), and hands every other
// record (a group, a time or LogValuer value, a non-finite float, any
// other Any, an attribute without a key, a ReplaceAttr or AddSource
// option) to a slog.JSONHandler it keeps beside it, so what it writes
// never differs (FuzzMatchesSlog). Both write whole lines through one
// mutex: lines never interleave, whichever path wrote them. Nothing is
// buffered or deferred: a line is written before Handle returns, as with
// slog's handler.
package logjson
