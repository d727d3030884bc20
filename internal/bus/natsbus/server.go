package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded NATS server. The zero value is an
// in-process-only server without JetStream.
type ServerConfig struct {
	// Name names the server (required, unique, in a cluster).
	Name string
	// DataDir enables JetStream with file storage under it; "" disables it.
	DataDir string
	// Listen, "host:port", also accepts NATS clients over TCP; "" means
	// in-process connections only. Port 0 picks a free port.
	Listen string
	// MaxPayload caps one message in bytes; 0 takes NATS's default (1 MiB).
	MaxPayload int32
	// ClusterName, ClusterListen ("host:port") and Routes (nats-route://
	// URLs of the other nodes) join the server to a cluster.
	ClusterName   string
	ClusterListen string
	Routes        []string
}

// Server is an embedded nats-server.
type Server struct {
	ns  *server.Server
	log *slog.Logger
}

// StartServer starts an embedded NATS server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: cfg.MaxPayload,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsbus: listen address: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.DataDir != "" {
		opts.JetStream = true
		opts.StoreDir = cfg.DataDir
	}
	if cfg.ClusterListen != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("natsbus: cluster address: %w", err)
		}
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = host, port
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("natsbus: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsbus: new server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("natsbus: server not ready within 10s")
	}
	return &Server{ns: ns, log: log}, nil
}

// ClientURL is the nats:// URL clients on other machines dial; "" when the
// server does not listen.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// ClusterAddr is the address of the cluster listener, nil without one.
func (s *Server) ClusterAddr() net.Addr { return s.ns.ClusterAddr() }

// NumRoutes reports the server's live cluster routes.
func (s *Server) NumRoutes() int { return s.ns.NumRoutes() }

// JetStream reports whether JetStream is enabled.
func (s *Server) JetStream() bool { return s.ns.JetStreamEnabled() }

// Connect opens an in-process connection to the server.
func (s *Server) Connect(name string) (*Conn, error) {
	return connect("", name, s.log, nats.InProcessServer(s.ns))
}

// Shutdown stops the server: it closes client and route connections,
// flushes JetStream to disk and waits until every server goroutine ended or
// ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsbus: server shutdown: %w", ctx.Err())
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT // for nats-server, 0 means its default port
	}
	return host, port, nil
}
