package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"courier/internal/testutil"
)

// openModel opens a shared model file, closing it when the test ends.
func openModel(t *testing.T, name string) *File {
	t.Helper()
	f, err := Open(testutil.Model(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// wantTensor checks a tensor's type and shape.
func wantTensor(t *testing.T, f *File, name string, typ Type, dims ...uint64) {
	t.Helper()
	ti, err := f.Tensor(name)
	if err != nil {
		t.Error(err)
		return
	}
	if ti.Type != typ || !reflect.DeepEqual(ti.Dims, dims) {
		t.Errorf("%s is %s %v, want %s %v", name, ti.Type, ti.Dims, typ, dims)
	}
}

// wantUint checks an integer metadata value.
func wantUint(t *testing.T, f *File, key string, want uint64) {
	t.Helper()
	if got, err := f.Uint(key); got != want || err != nil {
		t.Errorf("%s = %d, %v; want %d", key, got, err, want)
	}
}

// checkFills checks that the tensors fill the file: the data section ends
// within one alignment of the file's end.
func checkFills(t *testing.T, f *File, path string) {
	t.Helper()
	st, err := os.Stat(path)
	must(t, err)
	var end uint64
	for _, ti := range f.Tensors {
		end = max(end, f.DataOffset+ti.Offset+ti.Size)
	}
	if size := uint64(st.Size()); end > size || size-end >= f.Alignment {
		t.Errorf("tensor data ends at %d in a %d-byte file", end, size)
	}
}

func TestStories260K(t *testing.T) {
	f := openModel(t, "stories260K.gguf")
	if arch, err := f.String("general.architecture"); arch != "llama" || err != nil {
		t.Errorf("architecture = %q, %v", arch, err)
	}
	wantUint(t, f, "llama.embedding_length", 64)
	wantUint(t, f, "llama.block_count", 5)
	wantUint(t, f, "llama.feed_forward_length", 172)
	wantUint(t, f, "llama.attention.head_count", 8)
	wantUint(t, f, "llama.attention.head_count_kv", 4)
	wantUint(t, f, "llama.context_length", 2048)
	wantUint(t, f, "tokenizer.ggml.bos_token_id", 1)
	if eps, err := f.Float("llama.attention.layer_norm_rms_epsilon"); float32(eps) != 1e-5 || err != nil {
		t.Errorf("rms eps = %g, %v", eps, err)
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 512 || toks[1] != "<s>" || toks[2] != "</s>" {
		t.Errorf("tokens: %d, %v", len(toks), err)
	}
	if sc, err := f.Float32s("tokenizer.ggml.scores"); len(sc) != 512 || err != nil {
		t.Errorf("scores: %d, %v", len(sc), err)
	}
	if tt, err := f.Int32s("tokenizer.ggml.token_type"); len(tt) != 512 || tt[0] != 2 || err != nil {
		t.Errorf("token types: %d, %v", len(tt), err)
	}
	if len(f.Tensors) != 3+5*9 {
		t.Errorf("%d tensors, want 48", len(f.Tensors))
	}
	wantTensor(t, f, "token_embd.weight", TypeF32, 64, 512)
	wantTensor(t, f, "output.weight", TypeF32, 64, 512)
	wantTensor(t, f, "output_norm.weight", TypeF32, 64)
	wantTensor(t, f, "blk.4.attn_q.weight", TypeF32, 64, 64)
	wantTensor(t, f, "blk.4.attn_k.weight", TypeF32, 64, 32)
	wantTensor(t, f, "blk.0.ffn_down.weight", TypeF32, 172, 64)
	wantTensor(t, f, "blk.0.ffn_up.weight", TypeF32, 64, 172)
	checkFills(t, f, testutil.Model(t, "stories260K.gguf"))

	// llama.cpp's writer and ours lay a file out the same way.
	if again := rewrite(t, f); !bytes.Equal(again, mustRead(t, testutil.Model(t, "stories260K.gguf"))) {
		t.Error("rewriting stories260K.gguf does not reproduce it byte for byte")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}

func TestStories260KQ8_0(t *testing.T) {
	f := openModel(t, "stories260K-Q8_0.gguf")
	orig := openModel(t, "stories260K.gguf")
	wantUint(t, f, "general.file_type", 7)
	wantTensor(t, f, "token_embd.weight", TypeQ8_0, 64, 512)
	wantTensor(t, f, "blk.2.attn_v.weight", TypeQ8_0, 64, 32)
	wantTensor(t, f, "blk.2.ffn_down.weight", TypeF32, 172, 64)
	checkFills(t, f, testutil.Model(t, "stories260K-Q8_0.gguf"))
	// llama-quantize sorted the tensors, so they sit at other offsets; the
	// tensors it kept in F32 must still hold the same bytes.
	if f.Tensors[0].Name == orig.Tensors[0].Name {
		t.Errorf("first tensor is %s in both files; expected a reordering", f.Tensors[0].Name)
	}
	for _, name := range []string{"output_norm.weight", "blk.3.ffn_down.weight", "blk.4.attn_norm.weight"} {
		a, err1 := f.TensorData(name)
		b, err2 := orig.TensorData(name)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the F32 and Q8_0 files (%v, %v)", name, err1, err2)
		}
	}
}

func TestSynthLlamaQ4KM(t *testing.T) {
	f := openModel(t, "synth-llama-Q4_K_M.gguf")
	wantUint(t, f, "llama.embedding_length", 256)
	wantUint(t, f, "llama.block_count", 2)
	wantTensor(t, f, "output.weight", TypeQ6_K, 256, 512)
	wantTensor(t, f, "token_embd.weight", TypeQ4_K, 256, 512)
	wantTensor(t, f, "blk.1.attn_v.weight", TypeQ6_K, 256, 64)
	wantTensor(t, f, "blk.1.ffn_down.weight", TypeQ6_K, 512, 256)
	wantTensor(t, f, "blk.0.ffn_down.weight", TypeQ4_K, 512, 256)
	wantTensor(t, f, "blk.0.attn_norm.weight", TypeF32, 256)
	count := map[Type]int{}
	for _, ti := range f.Tensors {
		count[ti.Type]++
	}
	if want := map[Type]int{TypeF32: 5, TypeQ4_K: 13, TypeQ6_K: 3}; !reflect.DeepEqual(count, want) {
		t.Errorf("tensor types %v, want %v", count, want)
	}
	checkFills(t, f, testutil.Model(t, "synth-llama-Q4_K_M.gguf"))
}

func TestVocabFiles(t *testing.T) {
	dir := filepath.Join(testutil.DataDir(t), "models", "tokenizer-vectors")
	for _, tc := range []struct {
		file, model    string
		tokens, merges int
	}{
		{"ggml-vocab-gpt-2.gguf", "gpt2", 50257, 50000},
		{"ggml-vocab-llama-spm.gguf", "llama", 32000, 0},
		{"ggml-vocab-bert-bge.gguf", "bert", 30522, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := Open(filepath.Join(dir, tc.file))
			must(t, err)
			defer f.Close()
			if m, err := f.String("tokenizer.ggml.model"); m != tc.model || err != nil {
				t.Errorf("model = %q, %v", m, err)
			}
			toks, err := f.Strings("tokenizer.ggml.tokens")
			if len(toks) != tc.tokens || err != nil {
				t.Errorf("%d tokens, %v; want %d", len(toks), err, tc.tokens)
			}
			merges, _ := f.Strings("tokenizer.ggml.merges")
			if len(merges) != tc.merges {
				t.Errorf("%d merges, want %d", len(merges), tc.merges)
			}
			if len(f.Tensors) != 0 {
				t.Errorf("vocab file has %d tensors", len(f.Tensors))
			}
		})
	}
}

// TestAllSharedModels opens every shared GGUF file and describes it.
func TestAllSharedModels(t *testing.T) {
	root := filepath.Join(testutil.DataDir(t), "models")
	paths, _ := filepath.Glob(filepath.Join(root, "*.gguf"))
	more, _ := filepath.Glob(filepath.Join(root, "tokenizer-vectors", "*.gguf"))
	for _, p := range append(paths, more...) {
		f, err := Open(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if err := f.Describe(&bytes.Buffer{}); err != nil {
			t.Errorf("%s: describe: %v", filepath.Base(p), err)
		}
		f.Close()
	}
}

// BenchmarkOpen measures opening (mapping and parsing) shared files: a small
// model and a vocabulary of 50257 tokens and 50000 merges.
func BenchmarkOpen(b *testing.B) {
	for _, name := range []string{"stories260K.gguf", "tokenizer-vectors/ggml-vocab-gpt-2.gguf"} {
		path := filepath.Join(testutil.DataDir(b), "models", name)
		b.Run(filepath.Base(name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
