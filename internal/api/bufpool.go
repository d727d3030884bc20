package api

import (
	"io"
	"sync"
)

// bufPool holds the byte buffers a request reads its body into and writes
// its answer from: the decoders copy what they keep (encoding/json, and
// goccy/go-json, which decodes from a copy of its input and copies its
// strings out), and net/http copies what a handler writes before Write
// returns, so a buffer is free again when the handler is done with it.
// Reused, a request's bodies stay off the heap, and the collector runs
// less often (docs/fabric.md, "At Go's default GOGC").
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

// maxPooledBuf bounds the buffers kept: a large body or a long burst of
// events is left to the collector rather than held between requests.
const maxPooledBuf = 64 << 10

// getBuf returns an empty buffer from the pool.
func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

// putBuf hands b back; b, and anything sliced from it, must not be used
// again.
func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// readAll appends what r has to b, as io.ReadAll does to a fresh slice.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}
