package tensor

// PrefetchF16Rows asks the CPU to start loading rows rows of width
// elements of x, stride elements apart from x[0], into its caches (a hint:
// nothing is read or changed). Attention calls it on the next KV block of
// a head while it computes the current one: a block's rows of one head are
// a few cache lines far apart, which the hardware prefetchers do not
// follow across blocks. The rows must lie within x.
func PrefetchF16Rows(x []uint16, stride, rows, width int) {
	if rows <= 0 || width <= 0 {
		return
	}
	_ = x[(rows-1)*stride+width-1]
	if prefetchRows != nil {
		prefetchRows(&x[0], 2*stride, rows, (2*width+63)/64)
	}
}

// prefetchRows prefetches lines cache lines from each of rows rows stride
// bytes apart, from p on; nil where there is no assembly body.
var prefetchRows func(p *uint16, stride, rows, lines int)
