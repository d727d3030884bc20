package bus

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportGraph enforces the fabric's import rules over the repository's
// Go files, each with its reason.
func TestImportGraph(t *testing.T) {
	root := filepath.Join("..", "..")
	rules := []struct {
		forbidden string                // import path prefix
		allowed   func(dir string) bool // folders (relative to root) that may import it
		reason    string
	}{
		{"github.com/nats-io/", func(d string) bool { return d == "internal/bus/natsbus" },
			"natsbus is the only package that knows NATS; everything else speaks bus messages"},
		{"courier/internal/node", func(d string) bool { return strings.HasPrefix(d, "cmd/") || d == "internal/e2e" },
			"node wires the roles; only the binary (and the end-to-end tests) start them"},
		{"courier/internal/bus", func(d string) bool { return !strings.HasPrefix(d, "internal/engine") },
			"the engine knows nothing of the bus"},
		{"courier/internal/worker", func(d string) bool {
			return !strings.HasPrefix(d, "internal/engine") && !strings.HasPrefix(d, "internal/api")
		},
			"the engine and the gateway do not run workers"},
		{"net/http", func(d string) bool {
			return !strings.HasPrefix(d, "internal/worker") && !strings.HasPrefix(d, "internal/bus")
		},
			"only the gateway speaks HTTP"},
	}
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != ".." && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		dir := filepath.ToSlash(filepath.Dir(rel))
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, r := range rules {
				if strings.HasPrefix(p, r.forbidden) && !r.allowed(dir) && !strings.HasPrefix(dir, strings.TrimPrefix(r.forbidden, "courier/")) {
					t.Errorf("%s imports %s: %s", rel, p, r.reason)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files; is the root right?", checked)
	}
}
