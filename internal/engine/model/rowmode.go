package model

// RowMode says which of llama.cpp's code paths a batch row's arithmetic
// follows. llama.cpp picks kernels by the shape of the micro-batch (ubatch)
// a row is evaluated in: single rows (decoding) take ggml_vec_dot_* and the
// repacked gemv kernels; rows of a prompt evaluated together take
// llamafile's tinyBLAS, the repacked gemm kernels on whole groups of four
// rows, and from 64 rows a tiled flash-attention kernel. The last bits of
// the results differ between these paths, so to reproduce llama.cpp's
// single-stream outputs — and to compute the same for a sequence whatever
// else shares its step (batching, chunked prefill, prefix caching) — each
// row carries the mode it would have had in llama.cpp's single-stream
// evaluation, and the kernels follow the row's mode, never the batch's
// shape.
type RowMode uint8

// Row modes. RowDecode is the zero value; the prompt bits combine.
const (
	// RowDecode: a one-row ubatch (a generated token, or a one-token
	// prompt): vec_dot kernels, repacked gemv, one-chunk flash attention.
	RowDecode RowMode = 0
	// RowPrompt: a row of a ubatch of two or more rows: tinyBLAS where it
	// accepts the matrix shape.
	RowPrompt RowMode = 1 << 0
	// RowPromptGemm: also within the ubatch's leading multiple of four
	// rows (ubatches of four or more rows): repacked gemm kernels.
	RowPromptGemm RowMode = 1 << 1
	// RowPromptTiledAttention: a row of a ubatch of at least 64 rows: the
	// tiled flash-attention kernel.
	RowPromptTiledAttention RowMode = 1 << 2
)

// UbatchSize is llama.cpp's default micro-batch: a longer prompt is
// evaluated in ubatches of this many rows.
const UbatchSize = 512

// PromptRowMode returns the mode of row i of an n-token prompt evaluated
// the way llama-server does it: in ubatches of UbatchSize rows.
func PromptRowMode(i, n int) RowMode {
	start := i / UbatchSize * UbatchSize
	size := min(UbatchSize, n-start)
	j := i - start
	var m RowMode
	if size >= 2 {
		m |= RowPrompt
	}
	if size > 3 && j < size-size%4 {
		m |= RowPromptGemm
	}
	if size >= 64 {
		m |= RowPromptTiledAttention
	}
	return m
}
