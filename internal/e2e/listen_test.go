package e2e

import (
	"context"
	"net"
	"strings"
	"testing"

	"courier/internal/config"
	"courier/internal/node"
)

// TestServeFailsFastOnUsedPort: the listen address is bound before any
// model loads, so a used port is the error even when the model could not
// load at all (it is never tried).
func TestServeFailsFastOnUsedPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.Addr = busy.Addr().String()
	cfg.Models = []config.Model{{Name: "m", Path: "/nonexistent/model.gguf"}}
	n, err := node.Start(context.Background(), cfg, testLog())
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("started on a used port")
	}
	if !strings.Contains(err.Error(), "listen on "+cfg.Addr) || strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("err = %v; want the listen error, before the model is tried", err)
	}
}
