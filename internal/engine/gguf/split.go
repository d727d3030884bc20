package gguf

import (
	"fmt"
	"regexp"
	"strconv"
)

// The keys llama.cpp's gguf-split writes into every part of a split model.
const (
	KeySplitNo           = "split.no"            // uint16: this part, 0-based
	KeySplitCount        = "split.count"         // uint16: the number of parts
	KeySplitTensorsCount = "split.tensors.count" // int32: tensors in all parts
)

// splitNameRE matches a part's file name: PREFIX-00001-of-00003.gguf.
var splitNameRE = regexp.MustCompile(`^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

// SplitPath is the path of part i (0-based) of a model split in n parts,
// named as llama.cpp names them: PREFIX-00001-of-0000N.gguf.
func SplitPath(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, i+1, n)
}

// partOf is the later part that holds tensor i, nil when it is f's own.
func (f *File) partOf(i int) *File {
	if f.tensorPart == nil || f.tensorPart[i] == 0 {
		return nil
	}
	return f.parts[f.tensorPart[i]-1]
}

// Parts is the number of files the model spans: 1, or a split model's
// split.count.
func (f *File) Parts() int { return 1 + len(f.parts) }

// openParts opens the other parts of a split model whose first part f was
// opened from path, and adds their tensors to f's. A file without
// split.count, or with a count of 1, is a whole model.
func (f *File) openParts(path string) error {
	n, err := f.Uint(KeySplitCount)
	if err != nil || n <= 1 {
		return nil
	}
	no, _ := f.Uint(KeySplitNo)
	if no != 0 {
		return fmt.Errorf("gguf: %s is part %d of %d of a split model: open its first part (-00001-of-%05d.gguf)", path, no+1, n, n)
	}
	m := splitNameRE.FindStringSubmatch(path)
	if m == nil {
		return fmt.Errorf("gguf: %s is the first of %d parts of a split model, but its name is not PREFIX-00001-of-%05d.gguf, so the other parts cannot be found", path, n, n)
	}
	if named, _ := strconv.Atoi(m[3]); uint64(named) != n {
		return fmt.Errorf("gguf: %s says split.count %d, its name says %d parts", path, n, named)
	}
	if n > 9999 {
		return fmt.Errorf("gguf: %s: split.count %d is not a plausible number of parts", path, n)
	}
	f.tensorPart = make([]int32, len(f.Tensors))
	for i := 1; i < int(n); i++ {
		pp := SplitPath(m[1], i, int(n))
		p, err := openOne(pp)
		if err != nil {
			return fmt.Errorf("gguf: part %d of %d of %s: %w", i+1, n, path, err)
		}
		f.parts = append(f.parts, p)
		if pno, err := p.Uint(KeySplitNo); err != nil || pno != uint64(i) {
			return fmt.Errorf("gguf: %s: split.no is %d, want %d (%v)", pp, pno, i, err)
		}
		if pn, err := p.Uint(KeySplitCount); err != nil || pn != n {
			return fmt.Errorf("gguf: %s: split.count is %d, want %d (%v)", pp, pn, n, err)
		}
		for _, t := range p.Tensors {
			if _, dup := f.byName[t.Name]; dup {
				return fmt.Errorf("gguf: %s: tensor %q is in an earlier part too", pp, t.Name)
			}
			f.byName[t.Name] = len(f.Tensors)
			f.Tensors = append(f.Tensors, t)
			f.tensorPart = append(f.tensorPart, int32(i))
		}
	}
	if want, err := f.Int(KeySplitTensorsCount); err == nil && want != int64(len(f.Tensors)) {
		return fmt.Errorf("gguf: %s: split.tensors.count says %d tensors, the %d parts hold %d", path, want, n, len(f.Tensors))
	}
	return nil
}

// WriteSplit writes the model f as n parts named SplitPath(prefix, i, n),
// as llama.cpp's gguf-split --split-max-tensors does: the tensors in order,
// in n runs of about equal count; every part carries the split keys, the
// first also all of f's metadata.
func WriteSplit(f *File, prefix string, n int) error {
	if n < 1 || n > len(f.Tensors) || n > 9999 {
		return fmt.Errorf("gguf: cannot split %d tensors into %d parts", len(f.Tensors), n)
	}
	per := (len(f.Tensors) + n - 1) / n
	for i := range n {
		w := NewWriter()
		for _, kv := range f.Metadata {
			if i == 0 || kv.Key == KeyAlignment {
				if err := w.SetKV(kv.Key, kv.Value); err != nil {
					return err
				}
			}
		}
		for _, kv := range []struct {
			k string
			v any
		}{{KeySplitNo, uint16(i)}, {KeySplitCount, uint16(n)}, {KeySplitTensorsCount, int32(len(f.Tensors))}} {
			if err := w.SetKV(kv.k, kv.v); err != nil {
				return err
			}
		}
		for _, t := range f.Tensors[min(i*per, len(f.Tensors)):min((i+1)*per, len(f.Tensors))] {
			data, err := f.TensorData(t.Name)
			if err != nil {
				return err
			}
			if err := w.AddTensor(t.Name, t.Type, t.Dims, data); err != nil {
				return err
			}
		}
		if err := w.WriteFile(SplitPath(prefix, i, n)); err != nil {
			return err
		}
	}
	return nil
}
