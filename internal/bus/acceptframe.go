package bus

import (
	"encoding/binary"
	"encoding/json"
	"math"
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
