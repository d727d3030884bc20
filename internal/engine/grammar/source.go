package grammar

import (
	"fmt"
	"strings"
)

// Source is what a Grammar was compiled from: a constraint's Spec, or a
// forced tool call's format and tools. Another process holding the same
// vocabulary compiles the same grammar from it (a pipeline's last stage
// samples with the grammar its first stage's worker compiled), so the
// source, not the compiled form, is what travels.
type Source struct {
	Spec Spec // when Tools is empty
	// A forced tool call (ToolCalls): the format's name (ToolFormatNamed),
	// the tools and whether several calls may follow one another.
	Format   string
	Tools    []Tool
	Parallel bool
}

// Source returns what g was compiled from (Compile, ToolCalls), or nil
// for a grammar built otherwise.
func (g *Grammar) Source() *Source { return g.src }

// Build compiles s as Compile or ToolCalls compiled it.
func (s *Source) Build() (*Grammar, error) {
	if len(s.Tools) == 0 {
		return Compile(s.Spec)
	}
	f, ok := ToolFormatNamed(s.Format)
	if !ok {
		return nil, fmt.Errorf("%w: tool-call format %q", ErrUnsupported, s.Format)
	}
	return ToolCalls(f, s.Tools, s.Parallel)
}

// Key identifies s, for caches of what is built from it.
func (s *Source) Key() string {
	var b strings.Builder
	if len(s.Tools) == 0 {
		b.WriteString("spec\x00")
		b.WriteString(s.Spec.Type)
		b.WriteByte(0)
		b.Write(s.Spec.Schema)
		b.WriteByte(0)
		b.WriteString(s.Spec.Pattern)
		b.WriteByte(0)
		b.WriteString(s.Spec.Grammar)
		for _, c := range s.Spec.Choices {
			b.WriteByte(0)
			b.WriteString(c)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "tools\x00%s\x00%v", s.Format, s.Parallel)
	for _, t := range s.Tools {
		b.WriteByte(0)
		b.WriteString(t.Name)
		b.WriteByte(0)
		b.Write(t.Parameters)
	}
	return b.String()
}

// ToolFormatNamed returns the tool-call format of a family by its Name.
func ToolFormatNamed(name string) (ToolFormat, bool) {
	for _, f := range []ToolFormat{ToolsHermes, ToolsMistral, ToolsMistralArgs, ToolsLlama3, ToolsJSON} {
		if f.Name == name {
			return f, true
		}
	}
	return ToolFormat{}, false
}

// withSource returns a copy of g that records src (g's rules are shared:
// a Grammar is immutable).
func withSource(g *Grammar, src *Source) *Grammar {
	c := *g
	c.src = src
	return &c
}
