package store

import (
	"fmt"
	"math"
	"os"
	"sort"

	"courier/internal/engine/gguf"
)

// Info summarises a GGUF model file: what `courier models show` prints first
// and what Ollama's /api/tags and /api/show report.
type Info struct {
	Architecture  string // general.architecture
	Name          string // general.name, "" when absent
	Parameters    uint64 // elements of all tensors
	Quant         string // general.file_type's name (Q4_K_M, ...), else the dominant tensor type
	ContextLength uint64 // ARCH.context_length, 0 when absent
	Size          int64  // bytes of the file
	Template      string // tokenizer.chat_template, "" when absent
	// Metadata holds the scalar metadata (arrays left out: vocabularies are
	// megabytes), for /api/show's model_info.
	Metadata map[string]any
}

// fileTypes names llama.cpp's general.file_type values (llama_ftype).
var fileTypes = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
	22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
	28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
	38: "MXFP4",
}

// Inspect reads the summary of the GGUF file at path (for a split model,
// its first part: the metadata lives there).
func Inspect(path string) (Info, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	f, err := gguf.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	in := Info{Size: st.Size(), Metadata: map[string]any{}}
	if n := f.Parts(); n > 1 { // a split model: every part's bytes
		if m := splitRE.FindStringSubmatch(path); m != nil {
			for i := 1; i < n; i++ {
				if pst, err := os.Stat(gguf.SplitPath(m[1], i, n)); err == nil {
					in.Size += pst.Size()
				}
			}
		}
	}
	in.Architecture, _ = f.String("general.architecture")
	in.Name, _ = f.String("general.name")
	in.Template, _ = f.String("tokenizer.chat_template")
	if in.Architecture != "" {
		in.ContextLength, _ = f.Uint(in.Architecture + ".context_length")
	}
	bytesByType := map[gguf.Type]uint64{}
	for _, t := range f.Tensors {
		in.Parameters += t.NumElements()
		bytesByType[t.Type] += t.Size
	}
	if ft, err := f.Uint("general.file_type"); err == nil && fileTypes[ft] != "" {
		in.Quant = fileTypes[ft]
	} else {
		var best gguf.Type
		var most uint64
		for t, n := range bytesByType {
			if n > most || (n == most && t < best) {
				best, most = t, n
			}
		}
		if most > 0 {
			in.Quant = best.String()
		}
	}
	for _, kv := range f.Metadata {
		switch v := kv.Value.V.(type) {
		case float32:
			if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
				in.Metadata[kv.Key] = v
			}
		case float64:
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				in.Metadata[kv.Key] = v
			}
		default:
			if kv.Value.Type != gguf.ValueArray {
				in.Metadata[kv.Key] = v
			}
		}
	}
	return in, nil
}

// ParameterSize renders a parameter count as Ollama does: "260K", "1.1B".
func ParameterSize(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0fK", float64(n)/1e3)
	default:
		return fmt.Sprint(n)
	}
}

// MetadataKeys returns Info.Metadata's keys, sorted.
func (in Info) MetadataKeys() []string {
	keys := make([]string, 0, len(in.Metadata))
	for k := range in.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
