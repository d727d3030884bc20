package stage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/model"
	"courier/internal/testutil"
)

// TestStageGrantsConfineByModel runs model a's 2-stage pipeline whose
// stages log in as a worker confined to model a (natsbus.ServerUser.Models:
// courier.stage.a.> among its grants): it serves exact text, while the same
// credentials are refused subscribing to model b's stage subjects (or to
// every model's), and a step they forge onto b's step subject is dropped by
// the server. A stage server also refuses a step that would send its
// output to another model's subject.
func TestStageGrantsConfineByModel(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	want, _ := wholeGreedy(t, path, prompt, 16)

	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "grants", Listen: "127.0.0.1:0", Auth: &natsbus.ServerAuth{
		Users: []natsbus.ServerUser{
			{Name: "wa", Password: "pa", Role: natsbus.RoleWorker, Models: []string{"a"}},
			{Name: "gw", Password: "pg", Role: natsbus.RoleFull},
		},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	tok := filepath.Join(t.TempDir(), "wa.token")
	if err := os.WriteFile(tok, []byte("wa:pa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dialA := func(name string) *natsbus.Conn {
		c, err := natsbus.Dial(srv.ClientURL(), name, natsbus.ClientAuth{TokenFile: tok}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeConn(c) })
		return c
	}

	// Model a's pipeline, every stage on a's worker credentials.
	r2 := model.LayerRange{First: 2, End: total, Total: total}
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: r2, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s2, err := NewServer(dialA("s2"), st, ServerConfig{Instance: "s2", Model: "a", HeartbeatInterval: testBeat}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Close)
	r1 := model.LayerRange{First: 0, End: 2, Total: total}
	p, err := NewPipeline(dialA("first"), PipelineConfig{Instance: "first", Model: "a", Layers: r1, HeartbeatInterval: testBeat}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	e, err := engine.Load(path, engine.Options{Slots: 2, ContextLength: 256, Threads: 1, Layers: r1, Tail: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	p.SetContextLength(e.Info().ContextLength)
	waitReady(t, e, true)
	if got, _, err := greedy(e, prompt, nil, 16, nil); err != nil || !slices.Equal(got, want) {
		t.Fatalf("model a's pipeline on confined credentials: %v, %v; whole model %v", got, err, want)
	}

	// A raw client with a's credentials.
	violations := make(chan error, 16)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("wa", "pa"), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	for _, subj := range []string{"courier.stage.>", "courier.stage.b.>", AnnounceSubjects("b"), PingSubject("b"),
		StepSubject("b", "s2"), ReplySubject("b", "first")} {
		sub, err := nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(10 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("subscribe %s with a's credentials: %v, want a permissions violation", subj, err)
		}
	}

	// A forged step on b's step subject is dropped: a full-rights watcher
	// of b's step subject gets the probe published after it on a's
	// subjects, and nothing before it.
	watch := make(chan *nats.Msg, 4)
	wnc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("gw", "pg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	for _, subj := range []string{StepSubject("b", "s2"), "courier.stage.a.probe"} {
		if _, err := wnc.ChanSubscribe(subj, watch); err != nil {
			t.Fatal(err)
		}
	}
	if err := wnc.Flush(); err != nil {
		t.Fatal(err)
	}
	forged := AppendEncode(nil, &Message{Kind: KindStep, Epoch: 1, Step: 1, Opens: true, Reply: ReplySubject("b", "first")})
	if err := nc.Publish(StepSubject("b", "s2"), forged); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("courier.stage.a.probe", []byte("probe")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-watch:
		if m.Subject != "courier.stage.a.probe" {
			t.Fatalf("a's credentials delivered a message on %s", m.Subject)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the probe did not arrive")
	}
	for {
		select {
		case err := <-violations:
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation for publish") {
				goto refused
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no permissions violation for the forged publish")
		}
	}
refused:

	// A step of model a that routes its output to model b's subject is
	// refused with an error on its (a's) reply subject.
	reply := make(chan *nats.Msg, 4)
	if _, err := wnc.ChanSubscribe(ReplySubject("a", "probe"), reply); err != nil {
		t.Fatal(err)
	}
	if err := wnc.Flush(); err != nil {
		t.Fatal(err)
	}
	bad := Message{Kind: KindStep, Epoch: 1, Step: 1, Opens: true, Reply: ReplySubject("a", "probe"), Route: []string{StepSubject("b", "s3")}}
	bad.Tokens, bad.Pos, bad.Seq, bad.Logits = []int32{1}, []int32{0}, []int32{0}, []bool{false}
	bad.Tables, bad.KVBlocks, bad.KVBlockSize, bad.Context = [][]int32{{0}}, 4, 16, 256
	bad.Width, bad.Hidden = st.Dim(), make([]float32, st.Dim())
	if err := wnc.Publish(StepSubject("a", "s2"), AppendEncode(nil, &bad)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-reply:
		var r Message
		if err := Decode(m.Data, &r); err != nil || r.Kind != KindError || !strings.Contains(r.Err, "outside courier.stage.a.>") {
			t.Fatalf("a step routed to model b: %+v, %v; want an error naming courier.stage.a.>", r, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to a step routed to model b")
	}
}
