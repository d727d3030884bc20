package bus

import (
	"strings"
)

// Subjects. Every subject starts with "courier" and then names the step of
// the flow, so that `nats sub 'courier.>'` reads like a trace:
//
//	courier.ping                        gateway asks every worker for a heartbeat now
//	courier.hb.<worker>                 worker → gateways: Heartbeat (capacity)
//	courier.req.<model>.<worker>        gateway → one worker: Request; reply: Accept
//	courier.chunk.<gateway>.<request>   worker → gateway: Chunk, in Seq order
//	courier.cancel.<request>            gateway → workers: Cancel
//	courier.stage.<model>.…             a model's pipeline stages among themselves (package stage)
const (
	SubjectPing       = "courier.ping"
	SubjectHeartbeats = "courier.hb.*"
	SubjectCancels    = "courier.cancel.*"
)

// RequestSubject is the subject on which worker serves requests for model.
func RequestSubject(model, worker string) string {
	return "courier.req." + Token(model) + "." + Token(worker)
}

// StageSubjects matches every stage message of model's pipelines
// (package stage): the grant that lets a worker run stages of model and
// no other's.
func StageSubjects(model string) string { return "courier.stage." + Token(model) + ".>" }

// ChunkSubject is the subject on which gateway receives the chunks of
// request id; it is what the gateway puts in Request.ReplyTo.
func ChunkSubject(gateway, id string) string {
	return "courier.chunk." + Token(gateway) + "." + Token(id)
}

// ChunkSubjects is the wildcard subject matching every ChunkSubject of
// gateway.
func ChunkSubjects(gateway string) string {
	return "courier.chunk." + Token(gateway) + ".*"
}

// CancelSubject is the subject a Cancel for request id travels on.
func CancelSubject(id string) string { return "courier.cancel." + Token(id) }

// HeartbeatSubject is the subject worker publishes its heartbeats on.
func HeartbeatSubject(worker string) string { return "courier.hb." + Token(worker) }

// Token turns s into one valid subject token: bytes that NATS reserves
// ('.', '*', '>', whitespace, control bytes) and '%' are written as %XX, so
// distinct names stay distinct. An empty s becomes "%00".
func Token(s string) string {
	if s == "" {
		return "%00"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c == '.' || c == '*' || c == '>' || c == '%' || c == 0x7f
}
