package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
)

// Credential files `serve --nats-listen` writes under --data-dir when no
// --nats-auth-config is given: user:password of a NATS user each, 0600.
const (
	// WorkerTokenFile is the workers' credential: they may only take
	// requests, answer them and send heartbeats.
	WorkerTokenFile = "nats.token"
	// GatewayTokenFile is the credential of extra gateways (full rights:
	// they run the jobs store too).
	GatewayTokenFile = "nats-gateway.token"
)

// serverAuth is the embedded server's authentication for cfg (serve with
// --nats-listen): the users of --nats-auth-config, or a worker and a
// gateway user whose credentials are kept in the data dir (made once, kept
// across restarts so that joined processes can reconnect).
func serverAuth(cfg config.Node) (*natsbus.ServerAuth, []string, error) {
	if cfg.NATS.AuthConfig != "" {
		return &natsbus.ServerAuth{ConfigFile: cfg.NATS.AuthConfig, Creds: cfg.NATS.InternalCreds}, nil, nil
	}
	a := &natsbus.ServerAuth{}
	var files []string
	for _, u := range []struct {
		file, name string
		role       natsbus.Role
	}{{WorkerTokenFile, "worker", natsbus.RoleWorker}, {GatewayTokenFile, "gateway", natsbus.RoleFull}} {
		path, err := filepath.Abs(filepath.Join(cfg.DataDir, u.file))
		if err != nil {
			return nil, nil, fmt.Errorf("node: %w", err)
		}
		pass, err := credential(path, u.name)
		if err != nil {
			return nil, nil, err
		}
		a.Users = append(a.Users, natsbus.ServerUser{Name: u.name, Password: pass, Role: u.role})
		files = append(files, path)
	}
	return a, files, nil
}

// credential returns the password of user kept in path, creating the file
// (0600, a random password) when it does not exist.
func credential(path, user string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		u, pass, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok || u != user || pass == "" {
			return "", fmt.Errorf("node: %s does not hold %s:PASSWORD; delete it to make a new one", path, user)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("node: %w", err)
		}
		return pass, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node: %w", err)
	}
	var r [24]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("node: credential: %w", err)
	}
	pass := hex.EncodeToString(r[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	if _, err := f.WriteString(user + ":" + pass + "\n"); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("node: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	return pass, nil
}

// clientAuth is cfg's side of a NATS client connection.
func clientAuth(cfg config.Node) natsbus.ClientAuth {
	return natsbus.ClientAuth{
		CredsFile: cfg.NATS.CredsFile, TokenFile: cfg.NATS.TokenFile, NkeyFile: cfg.NATS.NkeyFile,
		TLSCert: cfg.NATS.TLSCert, TLSKey: cfg.NATS.TLSKey, TLSCA: cfg.NATS.TLSCA,
	}
}
