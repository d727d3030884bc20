package config

// EnginelessGCPercent is the garbage collector's target (GOGC) of a
// process that hosts no engine: a gateway, serve without --model, a
// worker fronting only upstreams. Such a process keeps a live heap of a
// few MB (connections, the NATS server's buffers), so at Go's default of
// 100 it collects every few MB allocated, every few hundred one-token
// requests, and the requests a collection overlaps set the HTTP path's p99
// (docs/fabric.md, "A heap goal for the gateway"). At 400 it collects a
// fifth to a quarter as often, for a heap goal of five times a small live
// heap. A
// process with an engine keeps Go's default: its KV cache is Go heap, so
// 400 would let its heap grow to five times the cache.
const EnginelessGCPercent = 400

// hostsEngine reports whether a process of c may run an engine in its
// own heap: it serves a --model (whole or a stage of one), or it is serve
// with --allow-pull, which loads the models clients pull.
func (c Node) hostsEngine() bool {
	return len(c.Models) > 0 || (c.Role == RoleServe && c.AllowPull)
}

// GCPercent is the GOGC a process of c sets as it starts:
// EnginelessGCPercent for a process that hosts no engine, unless GOGC is
// in the environment (envSet); 0 leaves Go's setting. As with StageProcs,
// the environment always wins, so GOGC=100 runs Go's default.
func (c Node) GCPercent(envSet bool) int {
	if envSet || c.hostsEngine() {
		return 0
	}
	return EnginelessGCPercent
}
