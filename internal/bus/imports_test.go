package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listedPackage is what the import rules read of `go list -json`.
type listedPackage struct {
	ImportPath   string
	Dir          string
	GoFiles      []string
	Imports      []string // direct, non-test
	Deps         []string // transitive, non-test
	TestImports  []string
	XTestImports []string
}

// listPackages runs `go list -json ./...` at the module root.
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages; is the root right?", len(pkgs))
	}
	return pkgs
}

func under(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

// TestImportGraph enforces the project's import rules on the whole graph
// (`go list` transitive dependencies, not only each file's own imports),
// each rule with its reason, in the manner of Tailscale's tstest/deptest.
func TestImportGraph(t *testing.T) {
	pkgs := listPackages(t)
	engine := func(p string) bool { return under(p, "courier/internal/engine") }
	for _, p := range pkgs {
		deps := p.Deps
		// 1. The engine is a library of the model: nothing of the service,
		// the network, the bus or metrics may reach it, so it can be
		// embedded, tested and fuzzed alone.
		if engine(p.ImportPath) {
			for _, d := range deps {
				switch {
				case under(d, "courier/internal") && !engine(d):
					t.Errorf("%s depends on %s: the engine imports nothing of the service", p.ImportPath, d)
				case d == "net/http", strings.HasPrefix(d, "github.com/nats-io/"), strings.HasPrefix(d, "github.com/prometheus/"):
					t.Errorf("%s depends on %s: the engine knows no network, bus or metrics", p.ImportPath, d)
				}
			}
		}
		// 2. Only natsbus speaks NATS: everything else speaks bus messages
		// and the jobs.Store interfaces, so the transport can change in one
		// package. Direct imports of NATS outside natsbus are refused, and
		// the packages below the wiring may not even depend on it.
		if p.ImportPath != "courier/internal/bus/natsbus" {
			for _, d := range p.Imports {
				if strings.HasPrefix(d, "github.com/nats-io/") {
					t.Errorf("%s imports %s: only internal/bus/natsbus imports NATS", p.ImportPath, d)
				}
			}
		}
		for _, below := range []string{"courier/internal/bus", "courier/internal/worker", "courier/internal/jobs",
			"courier/internal/completions", "courier/internal/api", "courier/internal/chat", "courier/internal/metrics", "courier/internal/upstream", "courier/internal/store", "courier/internal/stage", "courier/internal/fleet"} {
			if p.ImportPath == below {
				for _, d := range deps {
					if strings.HasPrefix(d, "github.com/nats-io/") || d == "courier/internal/bus/natsbus" {
						t.Errorf("%s depends on %s: it must work with any bus (only node and cmd wire natsbus in)", p.ImportPath, d)
					}
				}
			}
		}
		// 3. Workers, the bus messages and the jobs logic never touch HTTP:
		// requests reach them as bus messages, whatever the front door.
		for _, noHTTP := range []string{"courier/internal/bus", "courier/internal/worker", "courier/internal/jobs", "courier/internal/completions", "courier/internal/chat"} {
			if p.ImportPath == noHTTP && slices.Contains(deps, "net/http") {
				t.Errorf("%s depends on net/http: requests reach it as bus messages", p.ImportPath)
			}
		}
		// 4. node wires the roles; only the binary and the end-to-end tests
		// start them.
		all := slices.Concat(p.Imports, p.TestImports, p.XTestImports)
		if slices.Contains(all, "courier/internal/node") && p.ImportPath != "courier/cmd/courier" && p.ImportPath != "courier/internal/e2e" {
			t.Errorf("%s imports internal/node: only cmd/courier (and internal/e2e) start roles", p.ImportPath)
		}
		// 5. The engine and the gateway do not run workers.
		if (engine(p.ImportPath) || p.ImportPath == "courier/internal/api") && slices.Contains(deps, "courier/internal/worker") {
			t.Errorf("%s depends on internal/worker: the engine and the gateway do not run workers", p.ImportPath)
		}
	}
	checkHTTPServers(t, pkgs)
}

// serverSide are the net/http names that serve HTTP rather than call it.
var serverSide = []string{"Server", "ListenAndServe", "ListenAndServeTLS", "Serve", "ServeTLS", "NewServeMux", "ServeMux"}

// checkHTTPServers enforces that only the gateway speaks HTTP server-side:
// internal/api holds the handlers and builds the http.Server, internal/node
// runs it on the listener; store/hubtest is a fake model hub for tests.
// Other packages may be HTTP clients (upstream engines, model downloads,
// the load generator).
func checkHTTPServers(t *testing.T, pkgs []listedPackage) {
	allowed := []string{"courier/internal/api", "courier/internal/node", "courier/internal/store/hubtest"}
	fset := token.NewFileSet()
	for _, p := range pkgs {
		if slices.Contains(allowed, p.ImportPath) || !slices.Contains(p.Imports, "net/http") {
			continue
		}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			local := ""
			for _, imp := range f.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); path == "net/http" {
					local = "http"
					if imp.Name != nil {
						local = imp.Name.Name
					}
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && slices.Contains(serverSide, sel.Sel.Name) {
					t.Errorf("%s: %s uses http.%s: only the gateway (internal/api, wired by internal/node) serves HTTP",
						p.ImportPath, fset.Position(sel.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}
}
