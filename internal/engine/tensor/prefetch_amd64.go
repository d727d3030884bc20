//go:build !noasm

package tensor

//go:noescape
func prefetchRowsT0(p *uint16, stride, rows, lines int)

func init() { prefetchRows = prefetchRowsT0 }
