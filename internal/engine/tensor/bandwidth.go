package tensor

import (
	"encoding/binary"
	"time"
)

// MeasureReadBandwidth returns the machine's streaming read bandwidth in
// bytes per second, measured by threads goroutines (a Pool; <= 0 means
// GOMAXPROCS) summing a buffer of the given size, which should be much
// larger than the caches (e.g. 1 GiB). It takes the best of a few passes
// after a warm-up pass, so that benchmarks can report their throughput as a
// ratio to it in the same run.
func MeasureReadBandwidth(bytes int, threads int) float64 {
	bytes = max(bytes, 1<<20) &^ (readChunk - 1)
	buf := make([]byte, bytes)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i >> 12) // fault the pages in
	}
	p := NewPool(threads)
	defer p.Close()
	best := 0.0
	for pass := 0; pass < 4; pass++ {
		t0 := time.Now()
		p.readAll(buf)
		if pass > 0 {
			best = max(best, float64(bytes)/time.Since(t0).Seconds())
		}
	}
	return best
}

// readChunk is the bytes one thread reads per chunk of a bandwidth job.
const readChunk = 1 << 16

var readSink uint64

// readAll streams over buf on every thread of the pool.
func (p *Pool) readAll(buf []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	j := &p.job
	j.kind, j.buf, j.chunk = jobRead, buf, readChunk
	j.chunks = int64(len(buf) / readChunk)
	j.next.Store(0)
	j.sumIdx.Store(0)
	p.runJobLocked(true)
	readSink += uint64(j.sumIdx.Load())
	j.buf = nil
}

// read sums one chunk of the buffer.
func (j *job) read(c int) {
	b := j.buf[c*j.chunk : (c+1)*j.chunk]
	j.sumIdx.Add(int64(sumBytes(b)))
}

// sumBytesGeneric adds the buffer as uint64 words (len a multiple of 64).
func sumBytesGeneric(b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for i := 0; i+64 <= len(b); i += 64 {
		s0 += binary.LittleEndian.Uint64(b[i:]) + binary.LittleEndian.Uint64(b[i+32:])
		s1 += binary.LittleEndian.Uint64(b[i+8:]) + binary.LittleEndian.Uint64(b[i+40:])
		s2 += binary.LittleEndian.Uint64(b[i+16:]) + binary.LittleEndian.Uint64(b[i+48:])
		s3 += binary.LittleEndian.Uint64(b[i+24:]) + binary.LittleEndian.Uint64(b[i+56:])
	}
	return s0 + s1 + s2 + s3
}

// sumBytes is the read kernel (replaced by assembly where available).
var sumBytes = sumBytesGeneric
