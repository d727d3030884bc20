package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"courier/internal/config"
	"courier/internal/node"
)

// operatorFiles writes what `nsc` makes for an operator-mode bus: the
// server config (operator, system account, MEMORY resolver with the
// account JWTs preloaded) and the .creds of two users of its COURIER
// account, one with full rights (serve's own) and one with a worker's.
func operatorFiles(t *testing.T) (conf, full, worker string) {
	t.Helper()
	dir := t.TempDir()
	try := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	key := func(create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
		kp, err := create()
		try(err)
		pub, err := kp.PublicKey()
		try(err)
		return kp, pub
	}
	okp, opub := key(nkeys.CreateOperator)
	_, sysPub := key(nkeys.CreateAccount)
	akp, apub := key(nkeys.CreateAccount)
	oc := jwt.NewOperatorClaims(opub)
	oc.SystemAccount = sysPub
	ojwt, err := oc.Encode(okp)
	try(err)
	sjwt, err := jwt.NewAccountClaims(sysPub).Encode(okp)
	try(err)
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	try(err)
	creds := func(name string, perms func(*jwt.UserClaims)) string {
		ukp, upub := key(nkeys.CreateUser)
		uc := jwt.NewUserClaims(upub)
		if perms != nil {
			perms(uc)
		}
		ujwt, err := uc.Encode(akp)
		try(err)
		seed, err := ukp.Seed()
		try(err)
		b, err := jwt.FormatUserConfig(ujwt, seed)
		try(err)
		p := filepath.Join(dir, name+".creds")
		try(os.WriteFile(p, b, 0o600))
		return p
	}
	full = creds("serve", nil)
	worker = creds("worker", func(uc *jwt.UserClaims) { // docs/fabric.md's nsc line
		uc.Pub.Allow.Add("courier.hb.*", "courier.chunk.*.*")
		uc.Sub.Allow.Add("courier.req.>", "courier.cancel.*", "courier.ping")
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	})
	conf = filepath.Join(dir, "operator.conf")
	try(os.WriteFile(conf, fmt.Appendf(nil, "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		ojwt, sysPub, apub, ajwt, sysPub, sjwt), 0o600))
	return conf, full, worker
}

// TestServeNATSOperator: `serve --nats-listen --nats-auth-config` with an
// operator's config and `--nats-internal-creds` runs in JWT mode: a worker
// with a worker's .creds joins and serves through serve's API (its jobs
// store runs in the account's JetStream); a worker without credentials is
// refused.
func TestServeNATSOperator(t *testing.T) {
	conf, full, workerCreds := operatorFiles(t)
	cfg := serveConfig(t)
	cfg.NATSListen = "127.0.0.1:0"
	cfg.NATS = config.NATSSecurity{AuthConfig: conf, InternalCreds: full}
	n := startNode(t, cfg)
	for _, f := range []string{node.WorkerTokenFile, node.GatewayTokenFile} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err == nil {
			t.Fatalf("operator mode wrote %s", f)
		}
	}

	bad := config.Default(config.RoleWorker)
	bad.NATSURL, bad.Addr = n.NATSURL(), "127.0.0.1:0"
	bad.Models = []config.Model{{Name: "remote", Path: modelPath(t)}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if w, err := node.Start(ctx, bad, nil); err == nil {
		_ = w.Shutdown(ctx)
		t.Fatal("a worker without credentials joined")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("worker without credentials: %v, want an authorization violation", err)
	}

	wc := bad
	wc.NATS.CredsFile = workerCreds
	startNode(t, wc)
	if err := n.Gateway().WaitWorkers(testCtx(t), "remote", 1); err != nil {
		t.Fatal(err)
	}
	p := completionParams("Once upon a time", 20)
	p.Model = "remote"
	c := client(t, n.Addr())
	resp, err := c.Completions.New(testCtx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if want := greedy(t, "Once upon a time", 20); resp.Choices[0].Text != want {
		t.Fatalf("remote worker: %q, want %q", resp.Choices[0].Text, want)
	}
}
