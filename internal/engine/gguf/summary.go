package gguf

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Summary is the short description of a model file that `courier models
// inspect` prints before the full tables.
type Summary struct {
	Name, Arch   string
	Params       uint64
	Bytes        uint64
	Context      uint64 // <arch>.context_length; 0 when absent
	Layers       uint64 // <arch>.block_count; 0 when absent
	Embedding    uint64 // <arch>.embedding_length; 0 when absent
	Vocab        int    // tokens in tokenizer.ggml.tokens
	Types        []TypeShare
	ChatTemplate int // bytes of tokenizer.chat_template; 0 when absent
	PoolingType  int // <arch>.pooling_type (llama.cpp's values); -1 when absent, -2 when not an integer
	Tokenizer    string
	TokenizerPre string
}

// TypeShare is one tensor type's part of the file's parameters.
type TypeShare struct {
	Type    Type
	Tensors int
	Params  uint64
}

// Summary computes f's summary from its metadata and tensor infos.
func (f *File) Summary() Summary {
	s := Summary{PoolingType: -1}
	s.Arch, _ = f.String("general.architecture")
	s.Name, _ = f.String("general.name")
	uintOr0 := func(key string) uint64 {
		v, err := f.Uint(s.Arch + "." + key)
		if err != nil {
			return 0
		}
		return v
	}
	s.Context, s.Layers, s.Embedding = uintOr0("context_length"), uintOr0("block_count"), uintOr0("embedding_length")
	if v, err := f.Uint(s.Arch + ".pooling_type"); err == nil && v < 1<<16 {
		s.PoolingType = int(v)
	} else if !errors.Is(err, ErrNotFound) {
		s.PoolingType = -2 // present but not an integer
	}
	if t, err := f.String("tokenizer.chat_template"); err == nil {
		s.ChatTemplate = len(t)
	}
	if v, ok := f.Lookup("tokenizer.ggml.tokens"); ok && v.Type == ValueArray {
		s.Vocab = v.Len()
	}
	s.Tokenizer, _ = f.String("tokenizer.ggml.model")
	s.TokenizerPre, _ = f.String("tokenizer.ggml.pre")
	by := map[Type]*TypeShare{}
	for _, t := range f.Tensors {
		n := t.NumElements()
		s.Params += n
		s.Bytes += t.Size
		ts := by[t.Type]
		if ts == nil {
			ts = &TypeShare{Type: t.Type}
			by[t.Type] = ts
		}
		ts.Tensors++
		ts.Params += n
	}
	for _, ts := range by {
		s.Types = append(s.Types, *ts)
	}
	slices.SortFunc(s.Types, func(a, b TypeShare) int {
		if c := cmp.Compare(b.Params, a.Params); c != 0 {
			return c
		}
		return cmp.Compare(a.Type, b.Type)
	})
	return s
}

// poolingNames are llama.cpp's pooling types (enum llama_pooling_type).
var poolingNames = map[int]string{0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}

// PoolingName names a pooling_type value.
func PoolingName(v int) string {
	if n, ok := poolingNames[v]; ok {
		return n
	}
	return fmt.Sprintf("unknown (%d)", v)
}

// Mix describes the tensor types by their share of the parameters,
// largest first: "Q4_K 71.3%, Q6_K 13.5%, F32 <0.1%".
func (s Summary) Mix() string {
	parts := make([]string, 0, len(s.Types))
	for _, ts := range s.Types {
		share := 0.0
		if s.Params > 0 {
			share = 100 * float64(ts.Params) / float64(s.Params)
		}
		if share < 0.1 {
			parts = append(parts, fmt.Sprintf("%s <0.1%%", ts.Type))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f%%", ts.Type, share))
	}
	return strings.Join(parts, ", ")
}

// Write prints the summary, one "key: value" line each; pooling is the
// caller's line about pooling (what the engine does with the file's
// value), written after the file's own.
func (s Summary) Write(w io.Writer, pooling string) error {
	var b strings.Builder
	name := s.Name
	if name == "" {
		name = "(no general.name)"
	}
	fmt.Fprintf(&b, "model:          %s\n", safe(name))
	fmt.Fprintf(&b, "architecture:   %s", safe(s.Arch))
	if s.Layers > 0 || s.Embedding > 0 {
		fmt.Fprintf(&b, " (%d layers, embedding %d)", s.Layers, s.Embedding)
	}
	fmt.Fprintf(&b, "\nparameters:     %s (%d), %s\n", humanCount(s.Params), s.Params, humanBytes(s.Bytes))
	if s.Context > 0 {
		fmt.Fprintf(&b, "context:        %d tokens\n", s.Context)
	} else {
		fmt.Fprintf(&b, "context:        not in the file\n")
	}
	fmt.Fprintf(&b, "tensor types:   %s\n", s.Mix())
	tok := safe(s.Tokenizer)
	if s.TokenizerPre != "" {
		tok += " (pre " + safe(s.TokenizerPre) + ")"
	}
	fmt.Fprintf(&b, "tokenizer:      %s, %d tokens\n", tok, s.Vocab)
	if s.ChatTemplate > 0 {
		fmt.Fprintf(&b, "chat template:  yes (%d bytes)\n", s.ChatTemplate)
	} else {
		fmt.Fprintf(&b, "chat template:  no (chats use the plain fallback)\n")
	}
	fmt.Fprintf(&b, "pooling:        %s\n", pooling)
	_, err := io.WriteString(w, b.String())
	return err
}
