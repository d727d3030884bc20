package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"courier/internal/testutil"
)

// servedStage is a `courier serve --stage I/N` process: the gateway, the
// embedded NATS server (listening on loopback) and one stage of a model.
type servedStage struct {
	cmd       *exec.Cmd
	addr      string // the gateway's HTTP address
	natsURL   string // where the other stages join
	tokenFile string // their credential (node.WorkerTokenFile)
}

// startServedStage starts `courier serve` with share (e.g. "--stage",
// "1/2") of path's model, named name, with env added to its environment,
// until tb ends; it returns once the embedded server takes connections
// and the worker credential is written, before the pipeline is complete
// (a joining worker needs the credential serve writes).
func startServedStage(tb testing.TB, bin, name, path string, env []string, share ...string) *servedStage {
	tb.Helper()
	dir := tb.TempDir()
	s := &servedStage{addr: freeAddr(tb), tokenFile: filepath.Join(dir, "nats.token")}
	natsAddr := freeAddr(tb)
	s.natsURL = "nats://" + natsAddr
	args := append([]string{"serve", "--addr", s.addr, "--nats-listen", natsAddr, "--data-dir", dir,
		"--model", name + "=" + path, "--heartbeat", "200ms", "--log-level", "warn"}, share...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = os.Stderr
	startCmd(tb, s.cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", natsAddr); err == nil {
			c.Close()
			if _, err := os.Stat(s.tokenFile); err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("serve %s: NATS not listening on %s with %s within 30s", strings.Join(share, " "), natsAddr, s.tokenFile)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReady waits (bounded) until the served gateway reports a ready
// worker: with a first stage in the process, until its pipeline is whole.
func (s *servedStage) waitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("serve at %s: not ready within 60s (%v)", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// joinStage starts a `courier worker` process running share of path's
// model (named name) joined to s's NATS server with its worker credential.
func (s *servedStage) joinStage(tb testing.TB, bin, id, name, path string, env []string, share ...string) *exec.Cmd {
	tb.Helper()
	args := append([]string{"worker", "--nats", s.natsURL, "--nats-token-file", s.tokenFile, "--worker-id", id,
		"--model", name + "=" + path, "--heartbeat", "200ms", "--log-level", "warn"}, share...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	startCmd(tb, cmd)
	return cmd
}

// TestServeHostsStage runs a 2-stage pipeline as `courier serve --stage
// 1/2` (the gateway, the NATS server and the first stage in one process)
// joined by a `courier worker --stage 2/2` process over TCP, and the other
// way round (serve holding the last stage): greedy text through HTTP
// equals the whole model's.
func TestServeHostsStage(t *testing.T) {
	bin := courierBinary(t)
	const prompt = "Once upon a time"
	for _, tc := range []struct{ file, served, joined string }{
		{"stories260K.gguf", "1/2", "2/2"},
		{"synth-llama-F32.gguf", "1/2", "2/2"},
		{"synth-qwen2-F32.gguf", "2/2", "1/2"},
	} {
		t.Run(fmt.Sprintf("%s/serve-%s", tc.file, strings.ReplaceAll(tc.served, "/", "of")), func(t *testing.T) {
			path := testutil.Model(t, tc.file)
			name := strings.TrimSuffix(tc.file, ".gguf")
			want := greedyOf(t, path, prompt, 48)
			s := startServedStage(t, bin, name, path, nil, "--stage", tc.served)
			s.joinStage(t, bin, "joined", name, path, nil, "--stage", tc.joined)
			s.waitReady(t)
			if got := completeModel(t, s.addr, name, prompt, 48); got != want {
				t.Errorf("serve --stage %s with a worker --stage %s:\n%q\nwhole model:\n%q", tc.served, tc.joined, got, want)
			}
		})
	}
}
