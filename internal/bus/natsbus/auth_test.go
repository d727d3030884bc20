package natsbus

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"courier/internal/bus"
	"courier/internal/testutil"
)

// startAuthServer starts a listening JetStream server whose clients must
// authenticate: user "worker" (RoleWorker) and "gw" (RoleFull).
func startAuthServer(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	cfg.Name, cfg.Listen, cfg.DataDir = "auth", "127.0.0.1:0", t.TempDir()
	cfg.Auth = &ServerAuth{Users: []ServerUser{
		{Name: "worker", Password: "wpass", Role: RoleWorker},
		{Name: "gw", Password: "gpass", Role: RoleFull},
	}}
	srv, err := StartServer(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

func tokenFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "nats.token")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServerAuthRefusesAnonymous: a client without credentials, or with a
// wrong password, is refused; the users listed and the in-process
// connection get in.
func TestServerAuthRefusesAnonymous(t *testing.T) {
	srv := startAuthServer(t, ServerConfig{})
	for _, a := range []ClientAuth{{}, {TokenFile: tokenFile(t, "worker:nope")}, {TokenFile: tokenFile(t, "sometoken")}} {
		c, err := Dial(srv.ClientURL(), "anon", a, nil)
		if err == nil {
			_ = c.Close(context.Background())
			t.Fatalf("%+v: connected without valid credentials", a)
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Fatalf("%+v: %v, want an authorization violation", a, err)
		}
		if NoServer(err) {
			t.Fatalf("%+v: %v counts as no server: a worker would keep dialing a server that refuses it", a, err)
		}
	}
	for _, a := range []ClientAuth{{TokenFile: tokenFile(t, "worker:wpass")}, {TokenFile: tokenFile(t, "gw:gpass")}} {
		c, err := Dial(srv.ClientURL(), "ok", a, nil)
		if err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		_ = c.Close(context.Background())
	}
	u := strings.Replace(srv.ClientURL(), "nats://", "nats://gw:gpass@", 1) // credentials in the URL
	c, err := Dial(u, "url", ClientAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(context.Background())
	c, err = srv.Connect("inproc")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(context.Background())
}

// TestWorkerCredentialsAreConfined: with the worker's credentials a worker
// serves requests (subscribe its request subject, answer, stream chunks,
// heartbeat), but cannot subscribe to other requests' chunks or to the
// object store's subjects, nor reach the files' stream through the
// JetStream API.
func TestWorkerCredentialsAreConfined(t *testing.T) {
	srv := startAuthServer(t, ServerConfig{})
	ctx := waitCtx(t)

	// The full-rights side: the job store, and a gateway.
	full, err := srv.Connect("gateway")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = full.Close(context.Background()) })
	// (No file is put: the object store's async publishes leave a nats.go
	// goroutine that outlives the connection by a moment, and the store
	// existing is what the worker must not reach.)
	if _, err := OpenJobStore(ctx, full, JobStoreConfig{}); err != nil {
		t.Fatal(err)
	}
	g, err := NewGateway(full, GatewayConfig{HeartbeatTimeout: noLoss}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })

	// A worker joined with the worker credentials serves.
	wc, err := Dial(srv.ClientURL(), "worker", ClientAuth{TokenFile: tokenFile(t, "worker:wpass")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wc.Close(context.Background()) })
	sw, h := newSlotWorker("m", 1, words(text, nil))
	t.Cleanup(sw.wg.Wait)
	ho, err := NewHost(wc, h, HostConfig{Worker: "w1", Models: []string{"m"}, HeartbeatInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ho.Close)
	if err := g.WaitWorkers(ctx, "m", 1); err != nil {
		t.Fatal(err)
	}
	s, err := g.Dispatch(ctx, &bus.Request{ID: "r1", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, s); got != text+" " {
		t.Fatalf("worker answered %q", got)
	}
	_ = s.Close()

	// A raw client with the same credentials is refused everything else.
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("worker", "wpass"), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the violations are the point
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	for _, subj := range []string{"courier.chunk.>", "$O.courier_files.>", "$KV.courier_jobs.>", "courier.work.>", "$JS.API.>"} {
		sub, err := nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(10 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("subscribe %s: %v, want a permissions violation", subj, err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, time.Second) // a denied request goes unanswered
	defer cancel()
	if obs, err := js.ObjectStore(jctx, objectFiles); err == nil {
		_, err := obs.List(jctx)
		t.Fatalf("worker credentials opened the object store (list: %v)", err)
	}
	if _, err := js.Stream(jctx, "OBJ_"+objectFiles); err == nil {
		t.Fatal("worker credentials read the files' stream info")
	}
}

// TestServerTLS: with a certificate, key and CA (made here with
// crypto/x509) the listener speaks TLS and verifies client certificates:
// a client trusting the CA with a client certificate joins; one without a
// client certificate, or not trusting the CA, is refused.
func TestServerTLS(t *testing.T) {
	tf := testutil.NewTLSFiles(t)
	srv := startAuthServer(t, ServerConfig{TLSCert: tf.ServerCert, TLSKey: tf.ServerKey, TLSCA: tf.CA})
	tok := tokenFile(t, "worker:wpass")
	c, err := Dial(srv.ClientURL(), "tls", ClientAuth{TokenFile: tok, TLSCA: tf.CA, TLSCert: tf.ClientCert, TLSKey: tf.ClientKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.nc.TLSRequired() {
		t.Error("connection does not use TLS")
	}
	if _, err := c.nc.TLSConnectionState(); err != nil {
		t.Errorf("TLS state: %v", err)
	}
	_ = c.Close(context.Background())
	for name, a := range map[string]ClientAuth{
		"no client cert": {TokenFile: tok, TLSCA: tf.CA},
		"no CA":          {TokenFile: tok, TLSCert: tf.ClientCert, TLSKey: tf.ClientKey},
	} {
		if c, err := Dial(srv.ClientURL(), "bad", a, nil); err == nil {
			_ = c.Close(context.Background())
			t.Errorf("%s: connected", name)
		}
	}
	// In-process connections need no certificate.
	c, err = srv.Connect("inproc")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(context.Background())
}

// TestServerAuthConfigFile: users from a nats-server configuration file,
// one with a password and one with an nkey, get in with the rights the
// file gives them; the in-process connection keeps full rights.
func TestServerAuthConfigFile(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "worker.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "auth.conf")
	worker := `permissions: {publish: {allow: ["courier.hb.*", "courier.chunk.*.*"]}, subscribe: {allow: ["courier.req.m.*", "courier.cancel.*", "courier.ping"]}, allow_responses: true}`
	err = os.WriteFile(conf, []byte(`authorization {
  users = [
    {user: "gw", password: "gpass"}
    {nkey: "`+pub+`", `+worker+`}
  ]
}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartServer(ServerConfig{Name: "conf", Listen: "127.0.0.1:0", Auth: &ServerAuth{ConfigFile: conf}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if c, err := Dial(srv.ClientURL(), "anon", ClientAuth{}, nil); err == nil {
		_ = c.Close(context.Background())
		t.Fatal("anonymous client connected")
	}
	for _, a := range []ClientAuth{{TokenFile: tokenFile(t, "gw:gpass")}, {NkeyFile: seedFile}} {
		c, err := Dial(srv.ClientURL(), "ok", a, nil)
		if err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		_ = c.Close(context.Background())
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Nkey(pub, kp.Sign), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("courier.chunk.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("nkey worker subscribed to chunks: %v", err)
	}
	c, err := srv.Connect("inproc")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	if _, err := c.nc.SubscribeSync("courier.chunk.>"); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil || c.nc.LastError() != nil {
		t.Fatalf("in-process subscribe: %v, %v", err, c.nc.LastError())
	}

	bad := filepath.Join(dir, "token.conf")
	_ = os.WriteFile(bad, []byte("authorization { token: \"x\" }\n"), 0o600)
	if s, err := StartServer(ServerConfig{Name: "bad", Listen: "127.0.0.1:0", Auth: &ServerAuth{ConfigFile: bad}}, nil); err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("a token config was accepted beside the in-process user")
	}
}

// TestNoServer: a dial that finds nothing listening is NoServer (a worker
// keeps dialing it, node.dialWait); a refused credential is not
// (TestServerAuthRefusesAnonymous).
func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := Dial("nats://"+addr, "nobody-there", ClientAuth{}, nil)
	if err == nil {
		_ = c.Close(context.Background())
		t.Fatalf("connected to %s, where nothing listens", addr)
	}
	if !NoServer(err) {
		t.Fatalf("dial of %s with nothing listening: %v, not NoServer", addr, err)
	}
}
