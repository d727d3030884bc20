// Package gguf reads and writes GGUF, the model file format of ggml and
// llama.cpp: a header, typed metadata (key/value pairs), tensor infos, and
// aligned tensor data.
//
// # Reading
//
// Open memory-maps a file read-only and parses it; Parse does the same for
// an image already in memory. Versions 2 and 3 are read (little-endian
// only). Metadata and tensor infos are copied onto the heap; tensor data is
// not: TensorData returns slices of the mapping, valid until Close, so a
// multi-gigabyte model costs no heap.
//
// The file is hostile input. Every count and length is checked against the
// bytes left before anything is allocated, so a file of n bytes makes the
// parser allocate O(n) at most; shape and offset arithmetic is overflow
// checked; tensors must be aligned, inside the file, and disjoint; keys and
// tensor names must be unique; unknown value or tensor types, more than four
// dimensions, a zero dimension, or arrays nested more than eight deep are
// refused. Every such problem is a *FormatError (errors.Is(err, ErrInvalid))
// naming the byte offset where it was found; the parser never panics (it is
// fuzzed: go test -fuzz=FuzzParse ./internal/engine/gguf/).
//
// # Writing
//
// Writer builds a GGUF v3 file with metadata in insertion order and tensors
// aligned and zero-padded as llama.cpp writes them. Tensor data comes from a
// slice (AddTensor) or is streamed from a function during WriteTo
// (AddTensorFunc), so a large synthetic model need not be held in memory.
// Whatever the writer writes, Parse reads back identically.
//
// # Values
//
// Metadata values are Values: scalars as the Go type of the same width,
// arrays as typed slices, arrays of arrays as []Value. The File accessors
// (String, Uint, Int, Float, Bool, Strings, Float32s, Int32s) convert and
// report ErrNotFound or ErrWrongType.
package gguf
