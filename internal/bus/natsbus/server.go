package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"courier/internal/bus"
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

	// Auth, when set, makes every client authenticate (see ServerAuth);
	// nil lets anyone connect, which is only safe without Listen.
	Auth *ServerAuth
	// TLSCert and TLSKey (PEM files) make clients on Listen speak TLS;
	// TLSCA, when set, also makes them present a certificate it signed.
	TLSCert, TLSKey, TLSCA string
}

// Role is what a NATS user of Courier may do on the bus.
type Role int

const (
	// RoleFull may do anything: gateways, tools, `serve` itself.
	RoleFull Role = iota
	// RoleWorker may only take requests, answer them and send heartbeats
	// (workerPermissions): it cannot read files, jobs, batches, other
	// requests' chunks or the JetStream API.
	RoleWorker
)

// ServerUser is one user of an embedded server.
type ServerUser struct {
	Name, Password string
	Role           Role
	// Models confines a RoleWorker user to these models' requests and
	// stage messages; empty: every model.
	Models []string
}

// ServerAuth is who may connect to an embedded server, by NATS's own
// mechanisms (users with passwords or nkeys, and per-user permissions).
// The owning process's in-process connections (Server.Connect) always have
// full rights, as a user whose random password only they know.
type ServerAuth struct {
	// Users authenticate with a name and password.
	Users []ServerUser
	// ConfigFile is a nats-server configuration file whose `authorization`
	// block adds users (password or nkey) with the permissions it gives
	// them, and whose `tls` block, if any, applies to client connections.
	// Accounts and a bare token are refused: they cannot sit beside the
	// in-process user. A file with an `operator` puts the server in
	// operator (decentralized JWT) mode instead: see Creds.
	ConfigFile string
	// Creds, in operator mode, is the .creds file (user JWT and seed) the
	// owning process's in-process connections log in with: a user with
	// full rights, of an account with JetStream. The operator mode file
	// holds the operator, the system account and a MEMORY resolver with
	// the account JWTs preloaded (as `nsc generate config --mem-resolver`
	// writes it); every client then logs in with a user JWT (a .creds
	// file), whose permissions it carries. Users is then empty.
	Creds string
}

// workerPermissions are a worker's rights for models (all models when
// empty): subscribe to its models' request subjects, cancels and pings;
// publish heartbeats and chunks; exchange its models' stage messages
// (bus.StageSubjects); and one reply (the Accept) to each request it
// received. Everything else is denied, so a worker cannot subscribe to
// chunks, read or write work, files or key-value buckets, call the
// JetStream API, or see another model's requests or pipeline traffic.
func workerPermissions(models []string) *server.Permissions {
	reqs, stages := []string{"courier.req.>"}, []string{"courier.stage.>"}
	if len(models) > 0 {
		reqs, stages = reqs[:0], stages[:0]
		for _, m := range models {
			reqs = append(reqs, "courier.req."+bus.Token(m)+".*")
			stages = append(stages, bus.StageSubjects(m))
		}
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: append([]string{"courier.hb.*", "courier.chunk.*.*"}, stages...)},
		Subscribe: &server.SubjectPermission{Allow: append(append(reqs, bus.SubjectCancels, bus.SubjectPing), stages...)},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// Server is an embedded nats-server.
type Server struct {
	ns  *server.Server
	log *slog.Logger
	// user and pass are the in-process connections' credentials ("" when
	// the server needs none); creds replaces them in operator mode.
	user, pass, creds string
}

// internalUser is the name of the in-process connections' user.
const internalUser = "courier-internal"

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
	srv := &Server{log: log}
	if cfg.Auth != nil {
		if err := srv.applyAuth(opts, cfg.Auth); err != nil {
			return nil, err
		}
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.TLSCA != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, errors.New("natsbus: TLS needs both a certificate and its key")
		}
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSCA != "",
		})
		if err != nil {
			return nil, fmt.Errorf("natsbus: TLS: %w", err)
		}
		opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = tc, cfg.TLSCA != "", 2
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
	srv.ns = ns
	return srv, nil
}

// applyAuth puts a's users, and the in-process user, in opts; or, when
// a's file names an operator, its operator, resolver and accounts.
func (s *Server) applyAuth(opts *server.Options, a *ServerAuth) error {
	var fo *server.Options
	if a.ConfigFile != "" {
		var err error
		if fo, err = server.ProcessConfigFile(a.ConfigFile); err != nil {
			return fmt.Errorf("natsbus: %w", err)
		}
		if len(fo.TrustedOperators) > 0 {
			return s.applyOperator(opts, a, fo)
		}
	}
	if a.Creds != "" {
		return errors.New("natsbus: a .creds file for the in-process connections needs a config file with an operator")
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("natsbus: internal password: %w", err)
	}
	s.user, s.pass = internalUser, hex.EncodeToString(b[:])
	opts.Users = append(opts.Users, &server.User{Username: s.user, Password: s.pass})
	for _, u := range a.Users {
		if u.Name == "" || u.Password == "" || u.Name == internalUser {
			return fmt.Errorf("natsbus: user %q: a name (not %q) and a password are required", u.Name, internalUser)
		}
		su := &server.User{Username: u.Name, Password: u.Password}
		if u.Role == RoleWorker {
			su.Permissions = workerPermissions(u.Models)
		}
		opts.Users = append(opts.Users, su)
	}
	if fo == nil {
		return nil
	}
	switch {
	case fo.Authorization != "" || fo.Username != "":
		return fmt.Errorf("natsbus: %s: a token or single user cannot sit beside Courier's own user; list users = [...] in authorization", a.ConfigFile)
	case len(fo.Accounts) > 0 || len(fo.TrustedKeys) > 0:
		return fmt.Errorf("natsbus: %s: accounts are not supported beside users; use an operator (JWTs) or an external NATS cluster", a.ConfigFile)
	}
	for _, u := range fo.Users {
		if u.Username == internalUser {
			return fmt.Errorf("natsbus: %s: the user name %q is Courier's own", a.ConfigFile, internalUser)
		}
	}
	opts.Users = append(opts.Users, fo.Users...)
	opts.Nkeys = append(opts.Nkeys, fo.Nkeys...)
	if fo.TLSConfig != nil {
		opts.TLSConfig, opts.TLSVerify, opts.TLSMap, opts.TLSTimeout = fo.TLSConfig, fo.TLSVerify, fo.TLSMap, fo.TLSTimeout
	}
	if fo.AuthTimeout > 0 {
		opts.AuthTimeout = fo.AuthTimeout
	}
	return nil
}

// applyOperator puts the operator, system account and resolver of fo (the
// file a names) in opts: every client, the in-process ones included (with
// a.Creds), then logs in with a user JWT its account signed.
func (s *Server) applyOperator(opts *server.Options, a *ServerAuth, fo *server.Options) error {
	switch {
	case len(a.Users) > 0 || len(fo.Users) > 0 || len(fo.Nkeys) > 0 || len(fo.Accounts) > 0 || fo.Authorization != "" || fo.Username != "":
		return fmt.Errorf("natsbus: %s: with an operator, users are JWTs in .creds files: the file may list no users, accounts or token", a.ConfigFile)
	case fo.AccountResolver == nil:
		return fmt.Errorf("natsbus: %s: an operator needs a resolver (resolver: MEMORY with resolver_preload, as `nsc generate config --mem-resolver` writes)", a.ConfigFile)
	case a.Creds == "":
		return fmt.Errorf("natsbus: %s: with an operator, the in-process connections need a .creds file of a user with full rights in an account with JetStream", a.ConfigFile)
	}
	if _, err := os.Stat(a.Creds); err != nil {
		return fmt.Errorf("natsbus: in-process credentials: %w", err)
	}
	// ProcessConfigFile keeps the preloaded account JWTs where only
	// nats-server's own start-up reads them: store them in the resolver.
	m, err := conf.ParseFile(a.ConfigFile)
	if err != nil {
		return fmt.Errorf("natsbus: %w", err)
	}
	if pre, ok := m["resolver_preload"].(map[string]any); ok {
		for acc, v := range pre {
			jwt, ok := v.(string)
			if !ok {
				return fmt.Errorf("natsbus: %s: resolver_preload %s is not a JWT string", a.ConfigFile, acc)
			}
			if err := fo.AccountResolver.Store(acc, jwt); err != nil {
				return fmt.Errorf("natsbus: %s: preload account %s: %w", a.ConfigFile, acc, err)
			}
		}
	}
	opts.TrustedOperators, opts.SystemAccount, opts.AccountResolver = fo.TrustedOperators, fo.SystemAccount, fo.AccountResolver
	s.creds = a.Creds
	if fo.TLSConfig != nil {
		opts.TLSConfig, opts.TLSVerify, opts.TLSMap, opts.TLSTimeout = fo.TLSConfig, fo.TLSVerify, fo.TLSMap, fo.TLSTimeout
	}
	if fo.AuthTimeout > 0 {
		opts.AuthTimeout = fo.AuthTimeout
	}
	return nil
}

// ClientURL is the nats:// URL clients on other machines dial; "" when the
// server does not listen.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Name is the server's name (a stream's leader is named by it).
func (s *Server) Name() string { return s.ns.Name() }

// ClusterAddr is the address of the cluster listener, nil without one.
func (s *Server) ClusterAddr() net.Addr { return s.ns.ClusterAddr() }

// NumRoutes reports the server's live cluster routes.
func (s *Server) NumRoutes() int { return s.ns.NumRoutes() }

// JetStream reports whether JetStream is enabled.
func (s *Server) JetStream() bool { return s.ns.JetStreamEnabled() }

// Connect opens an in-process connection to the server.
func (s *Server) Connect(name string) (*Conn, error) {
	// No write deadline: on an in-process connection (a net.Pipe) each
	// deadline set arms and stops a timer, twice per flush, and the
	// deadline guards against a peer that stopped reading, which the
	// server in this process never does (a server that closes the
	// connection ends the write with an error).
	extra := []nats.Option{nats.InProcessServer(s.ns), nats.FlusherTimeout(0)}
	switch {
	case s.creds != "":
		extra = append(extra, nats.UserCredentials(s.creds))
	case s.user != "":
		extra = append(extra, nats.UserInfo(s.user, s.pass))
	}
	return connect("", name, s.log, extra...)
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
