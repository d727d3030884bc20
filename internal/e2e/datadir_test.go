package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDataDirLock: a second `courier serve` on a --data-dir that a running
// serve holds exits non-zero within 5 s, naming the holder's pid, without
// touching its JetStream store.
func TestDataDirLock(t *testing.T) {
	bin := courierBinary(t)
	cfg := serveConfig(t)
	startNode(t, cfg) // holds cfg.DataDir in this process

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "--data-dir", cfg.DataDir, "--addr", "127.0.0.1:0",
		"--model", modelName+"="+modelPath(t))
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("second serve still running after 5s; stderr:\n%s", stderr.String())
	}
	if err == nil {
		t.Fatalf("second serve exited 0; stderr:\n%s", stderr.String())
	}
	want := fmt.Sprintf("data dir in use by pid %d", os.Getpid())
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
	}
}
