package sampler

import "math"

// TokenLogprob is a token id with a score. LogSoftmaxTop fills Logprob with
// a log-probability; inside the sampler the same pair carries a logit.
type TokenLogprob struct {
	ID      int32
	Logprob float32
}

// selectTop fills dst with the len(dst) largest entries of logits (ID and
// logit), best first; equal logits put the lower id first. It keeps a
// min-heap of the best entries so far: O(V + k log k) when, as usual, few
// entries displace the heap's root, and it never sorts the vocabulary.
// len(dst) must be <= len(logits).
func selectTop(logits []float32, dst []TokenLogprob) []TokenLogprob {
	k := len(dst)
	if k == 0 {
		return dst
	}
	for i := range k {
		dst[i] = TokenLogprob{ID: int32(i), Logprob: logits[i]}
	}
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(dst, i)
	}
	root := dst[0].Logprob
	for i := k; i < len(logits); i++ {
		// Ids arrive in increasing order, so an equal logit never beats the
		// root: ties keep the lower id. NaN never enters.
		if l := logits[i]; l > root {
			dst[0] = TokenLogprob{ID: int32(i), Logprob: l}
			siftDown(dst, 0)
			root = dst[0].Logprob
		}
	}
	// Heap sort: moving the worst entry to the end each time leaves dst
	// best first.
	for end := k - 1; end > 0; end-- {
		dst[0], dst[end] = dst[end], dst[0]
		siftDown(dst[:end], 0)
	}
	return dst
}

// worse orders the heap: a lower logit, or an equal logit with a higher id.
func worse(a, b TokenLogprob) bool {
	return a.Logprob < b.Logprob || (a.Logprob == b.Logprob && a.ID > b.ID)
}

// siftDown restores the min-heap (root = worst) below index i.
func siftDown(h []TokenLogprob, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// argmax returns the index of the largest value, the lowest index among
// equals (llama.cpp's greedy sampler), 0 when every value is -Inf or NaN.
func argmax(logits []float32) int32 {
	best, id := float32(math.Inf(-1)), 0
	for i, l := range logits {
		if l > best {
			best, id = l, i
		}
	}
	return int32(id)
}

// maxOf returns the largest value in logits (-Inf when empty or all NaN).
func maxOf(logits []float32) float32 {
	m := float32(math.Inf(-1))
	for _, l := range logits {
		if l > m {
			m = l
		}
	}
	return m
}

const (
	log2e = 1.44269504088896341
	ln2hi = 0.693359375
	ln2lo = -2.12194440e-4
)

// expf is a fast float32 e^x, within 2 ulp of math.Exp over the range the
// sampler uses (x <= 0): it splits x = n·ln2 + r with |r| <= ln2/2 and
// evaluates a degree-6 minimax polynomial for e^r (the Cephes expf
// coefficients). Results below 2^-126 flush to 0. It is faster than
// math.Exp in float64 and the sampler calls it once per vocabulary entry.
func expf(x float32) float32 {
	if !(x >= -87.33654 && x <= 88.37) { // also NaN
		return expfEdge(x)
	}
	// Adding and subtracting 1.5·2^23 rounds to the nearest integer, without
	// a call to math.Floor.
	n := (x*log2e + 12582912) - 12582912
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// expfEdge handles what expf's fast path does not: NaN, underflow, and
// arguments whose power of two would not fit a float32 exponent.
func expfEdge(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < -87.33654:
		return 0
	case x > 88.72283:
		return float32(math.Inf(1))
	}
	return float32(math.Exp(float64(x)))
}

// Finite reports whether every value in logits is a finite number. A model
// whose weights hold NaN, or whose activations blow up, produces NaN or
// ±Inf logits, which no sampler can rank and no JSON can carry; the engine
// checks each logits row with Finite before it samples. x·0 is 0 for every
// finite x and NaN for NaN and ±Inf, so one pass of multiply-adds (four
// independent sums, no branch) answers without allocating, at about the
// cost of reading the row once.
func Finite(logits []float32) bool {
	var a, b, c, d float32
	i := 0
	for ; i+4 <= len(logits); i += 4 {
		a += logits[i] * 0
		b += logits[i+1] * 0
		c += logits[i+2] * 0
		d += logits[i+3] * 0
	}
	for ; i < len(logits); i++ {
		a += logits[i] * 0
	}
	return a+b+c+d == 0
}
