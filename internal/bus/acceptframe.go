package bus

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
)

// An accept frame is the binary form of an Accept without an error, which
// a worker sends in reply to a Request whose ChunkFrames is 3 or more
// (docs/protocol.md, "Accept"): a gateway that reads token frames of
// version 3 reads it too. Refusals stay JSON.
//
//	accept = 0xC2 uvarint(attempt) uvarint(heartbeat_seq) varint(at) str(id) str(worker)

// AcceptMagic is the first byte of an accept frame; it never starts JSON.
const AcceptMagic = 0xC2

// AppendAcceptFrame appends a's frame; a must have no Error.
func AppendAcceptFrame(dst []byte, a *Accept) []byte {
	dst = append(dst, AcceptMagic)
	dst = binary.AppendUvarint(dst, uint64(max(a.Attempt, 0)))
	dst = binary.AppendUvarint(dst, a.HeartbeatSeq)
	dst = binary.AppendVarint(dst, a.At)
	dst = appendStr(dst, a.ID)
	return appendStr(dst, a.Worker)
}

// DecodeAccept reads an Accept from data: an accept frame or JSON. A
// frame's strings are copied (an Accept outlives the message).
func DecodeAccept(data []byte, a *Accept) error {
	if len(data) == 0 || data[0] != AcceptMagic {
		return json.Unmarshal(data, a)
	}
	r := frameReader{b: data[1:]}
	attempt := r.uvarint()
	seq := r.uvarint()
	at := r.varint()
	id := r.bytes()
	worker := r.bytes()
	if r.err != nil || len(r.b) != 0 || attempt > math.MaxInt32 {
		return errFrame
	}
	*a = Accept{V: Version, ID: string(id), Worker: string(worker), Attempt: int(attempt), HeartbeatSeq: seq, At: at}
	return nil
}

// An accepting frame (version 4) is a token frame that doubles as the
// accept: a worker answering a Request whose ChunkFrames is 4 or more
// holds its accept until the attempt's first message, and when that is a
// token frame, puts the accept's fields in front of it instead of sending
// the accept on its own (docs/protocol.md, "Accept"). The frame's header
// names the request, the attempt and the worker.
//
//	accepting = 0xC3 uvarint(heartbeat_seq) varint(at) frame

// AcceptingMagic is the first byte of an accepting frame; it never starts
// JSON.
const AcceptingMagic = 0xC3

// AppendAcceptingPrefix appends what an accepting frame puts before its
// frame (AppendFrameHeader follows).
func AppendAcceptingPrefix(dst []byte, heartbeatSeq uint64, at int64) []byte {
	dst = append(dst, AcceptingMagic)
	dst = binary.AppendUvarint(dst, heartbeatSeq)
	return binary.AppendVarint(dst, at)
}

// IsAccepting reports whether data is an accepting frame.
func IsAccepting(data []byte) bool { return len(data) > 0 && data[0] == AcceptingMagic }

// ReadAcceptingPrefix reads an accepting frame's accept fields and returns
// them with the token frame that follows.
func ReadAcceptingPrefix(data []byte) (heartbeatSeq uint64, at int64, frame []byte, err error) {
	if !IsAccepting(data) {
		return 0, 0, nil, errFrame
	}
	r := frameReader{b: data[1:]}
	heartbeatSeq = r.uvarint()
	at = r.varint()
	if r.err != nil || !IsFrame(r.b) {
		return 0, 0, nil, errFrame
	}
	return heartbeatSeq, at, r.b, nil
}

// Untoken reverses Token: the name a subject token was made from. A token
// that Token cannot have made (a bad %XX) is returned as it is.
func Untoken(tok string) string {
	if tok == "%00" {
		return ""
	}
	i := strings.IndexByte(tok, '%')
	if i < 0 {
		return tok
	}
	b := make([]byte, 0, len(tok))
	b = append(b, tok[:i]...)
	for ; i < len(tok); i++ {
		c := tok[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(tok) {
			return tok
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return tok
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
