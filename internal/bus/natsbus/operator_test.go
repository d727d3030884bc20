package natsbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"courier/internal/bus"
)

// operatorSetup is what `nsc` makes for an operator-mode bus: the server's
// config file (operator, system account, MEMORY resolver with the account
// JWTs preloaded) and .creds files of users of the COURIER account.
type operatorSetup struct {
	config             string
	full, worker, anon string // .creds files: full rights; a worker's; a user of another operator
}

func newOperatorSetup(t *testing.T) operatorSetup {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator := func() (nkeys.KeyPair, string) {
		kp, err := nkeys.CreateOperator()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		return kp, pub
	}
	account := func() (nkeys.KeyPair, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		return kp, pub
	}
	okp, opub := operator()
	_, sysPub := account()
	oc := jwt.NewOperatorClaims(opub)
	oc.SystemAccount = sysPub
	ojwt, err := oc.Encode(okp)
	must(err)
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sjwt, err := sc.Encode(okp)
	must(err)
	akp, apub := account()
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "COURIER"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	must(err)
	creds := func(name string, signer nkeys.KeyPair, perms func(*jwt.UserClaims)) string {
		ukp, err := nkeys.CreateUser()
		must(err)
		upub, err := ukp.PublicKey()
		must(err)
		uc := jwt.NewUserClaims(upub)
		uc.Name = name
		if perms != nil {
			perms(uc)
		}
		ujwt, err := uc.Encode(signer)
		must(err)
		seed, err := ukp.Seed()
		must(err)
		b, err := jwt.FormatUserConfig(ujwt, seed)
		must(err)
		path := filepath.Join(dir, name+".creds")
		must(os.WriteFile(path, b, 0o600))
		return path
	}
	s := operatorSetup{
		full: creds("serve", akp, nil),
		worker: creds("worker", akp, func(uc *jwt.UserClaims) {
			// A worker's rights, as docs/fabric.md gives them to nsc.
			uc.Pub.Allow.Add("courier.hb.*", "courier.chunk.*.*")
			uc.Sub.Allow.Add("courier.req.>", bus.SubjectCancels, bus.SubjectPing)
			uc.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
		}),
	}
	// A well-formed user of an account of another operator.
	okp2, _ := operator()
	akp2, apub2 := account()
	ac2 := jwt.NewAccountClaims(apub2)
	_, err = ac2.Encode(okp2)
	must(err)
	s.anon = creds("stranger", akp2, nil)
	s.config = filepath.Join(dir, "operator.conf")
	must(os.WriteFile(s.config, fmt.Appendf(nil, "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		ojwt, sysPub, apub, ajwt, sysPub, sjwt), 0o600))
	return s
}

// TestServerOperatorMode: with an operator's config and a .creds file for
// its own connections, the embedded server takes users by JWT: the
// in-process side runs JetStream and a gateway; a worker with valid
// .creds serves a request and is confined to a worker's subjects; a
// client without credentials, or with a user of another operator, is
// refused.
func TestServerOperatorMode(t *testing.T) {
	op := newOperatorSetup(t)
	srv, err := StartServer(ServerConfig{Name: "op", Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: &ServerAuth{ConfigFile: op.config, Creds: op.full}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	ctx := waitCtx(t)

	full, err := srv.Connect("gateway")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = full.Close(context.Background()) })
	if _, err := OpenJobStore(ctx, full, JobStoreConfig{}); err != nil {
		t.Fatalf("JetStream in the operator's account: %v", err)
	}
	g, err := NewGateway(full, GatewayConfig{HeartbeatTimeout: noLoss}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })

	wc, err := Dial(srv.ClientURL(), "worker", ClientAuth{CredsFile: op.worker}, nil)
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

	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(op.worker), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the violation is the point
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("courier.chunk.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("worker JWT subscribing to chunks: %v, want a permissions violation", err)
	}

	for name, a := range map[string]ClientAuth{"no credentials": {}, "another operator's user": {CredsFile: op.anon}} {
		c, err := Dial(srv.ClientURL(), "bad", a, nil)
		if err == nil {
			_ = c.Close(context.Background())
			t.Fatalf("%s: connected", name)
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Fatalf("%s: %v, want an authorization violation", name, err)
		}
	}
}

// TestServerOperatorModeNeedsItsCreds: an operator's config without a
// .creds file for the in-process side, or with users beside it, is refused
// at start with the reason.
func TestServerOperatorModeNeedsItsCreds(t *testing.T) {
	op := newOperatorSetup(t)
	for name, c := range map[string]struct {
		auth ServerAuth
		want string
	}{
		"no creds":    {ServerAuth{ConfigFile: op.config}, "in-process connections need a .creds"},
		"users too":   {ServerAuth{ConfigFile: op.config, Creds: op.full, Users: []ServerUser{{Name: "u", Password: "p"}}}, "users are JWTs"},
		"creds alone": {ServerAuth{Creds: op.full}, "needs a config file with an operator"},
	} {
		a := c.auth
		srv, err := StartServer(ServerConfig{Name: "op", Listen: "127.0.0.1:0", Auth: &a}, nil)
		if err == nil {
			_ = srv.Shutdown(context.Background())
			t.Fatalf("%s: started", name)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: %v, want %q", name, err, c.want)
		}
	}
}
