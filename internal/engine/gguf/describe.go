package gguf

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
)

// describeItems is how many array elements Describe shows before it
// abbreviates; describeString is the longest string it shows whole.
const (
	describeItems  = 8
	describeString = 64
)

// Describe writes a human-readable summary of the file: the header, every
// metadata entry (arrays abbreviated to their first 8 elements and their
// count, long strings cut), a table of the tensors (name, type, dims in ggml
// order, bytes, offset in the data section) in file order, and totals
// (parameters, bytes by type).
func (f *File) Describe(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "GGUF v%d: %d metadata keys, %d tensors, alignment %d, data at byte %d\n",
		f.Version, len(f.Metadata), len(f.Tensors), f.Alignment, f.DataOffset)

	fmt.Fprintf(tw, "\nmetadata:\n")
	for _, kv := range f.Metadata {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", safe(kv.Key), typeLabel(kv.Value), formatValue(kv.Value, 0))
	}

	fmt.Fprintf(tw, "\ntensors:\n  name\ttype\tdims\tbytes\toffset\n")
	var params, total uint64
	byType := map[Type][2]uint64{} // count, bytes
	for _, t := range f.Tensors {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\n", safe(t.Name), t.Type, formatDims(t.Dims), t.Size, t.Offset)
		params += t.NumElements()
		total += t.Size
		c := byType[t.Type]
		byType[t.Type] = [2]uint64{c[0] + 1, c[1] + t.Size}
	}

	fmt.Fprintf(tw, "\ntotals:\n  parameters\t%d\t(%s)\n  bytes\t%d\t(%s)\n", params, humanCount(params), total, humanBytes(total))
	types := make([]Type, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		c := byType[t]
		fmt.Fprintf(tw, "  %s\t%s\t%d bytes\t(%s)\n", t, plural(c[0], "tensor"), c[1], humanBytes(c[1]))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("gguf: describe: %w", err)
	}
	return nil
}

// typeLabel names a value's type: "uint32", "[]string", "[][]int32".
func typeLabel(v Value) string {
	if v.Type != ValueArray {
		return v.Type.String()
	}
	if v.Elem != ValueArray {
		return "[]" + v.Elem.String()
	}
	return "[]array"
}

// formatValue renders a value, abbreviating arrays and long strings.
func formatValue(v Value, depth int) string {
	if v.Type != ValueArray {
		if s, ok := v.V.(string); ok {
			return quoteCut(s)
		}
		return fmt.Sprint(v.V)
	}
	n := v.Len()
	rv := reflect.ValueOf(v.V)
	var b strings.Builder
	if n > describeItems || depth > 0 {
		fmt.Fprintf(&b, "(%d) ", n)
	}
	b.WriteByte('[')
	for i := 0; i < n && i < describeItems; i++ {
		if i > 0 {
			b.WriteString(" ")
		}
		switch e := rv.Index(i).Interface().(type) {
		case string:
			b.WriteString(quoteCut(e))
		case Value:
			b.WriteString(typeLabel(e) + formatValue(e, depth+1))
		default:
			fmt.Fprint(&b, e)
		}
	}
	if n > describeItems {
		fmt.Fprintf(&b, " ... %d more", n-describeItems)
	}
	b.WriteByte(']')
	return b.String()
}

func quoteCut(s string) string {
	if len(s) <= describeString {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:describeString], len(s))
}

func formatDims(dims []uint64) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, "x")
}

func humanCount(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.2fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// safe returns s, or s quoted when it holds anything but printable ASCII,
// so that a hostile name cannot break the table or the terminal.
func safe(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Sprintf("%q", s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
