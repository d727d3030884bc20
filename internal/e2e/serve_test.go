package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/node"
	"courier/internal/testutil"
)

func serveConfig(t testing.TB) config.Node {
	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
	return cfg
}

func TestServe(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)

	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != modelName {
		t.Fatalf("models %+v, %v", models, err)
	}

	const prompt = "Once upon a time"
	want := greedy(t, prompt, 40)
	resp, err := c.Completions.New(ctx, completionParams(prompt, 40))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Text; got != want {
		t.Fatalf("completion %q\nwant (engine) %q", got, want)
	}
	if resp.Usage.CompletionTokens != 40 || resp.Choices[0].FinishReason != "length" {
		t.Fatalf("usage %+v finish %q", resp.Usage, resp.Choices[0].FinishReason)
	}
	got, err := streamText(ctx, c, prompt, 40, nil)
	if err != nil || got != want {
		t.Fatalf("streamed %q, %v\nwant %q", got, err, want)
	}

	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(20),
		Temperature: openai.Float(0),
	}
	cr, err := c.Chat.Completions.New(ctx, chat)
	if err != nil || len(cr.Choices) != 1 || cr.Choices[0].Message.Content == "" || cr.Usage.CompletionTokens == 0 {
		t.Fatalf("chat %+v, %v", cr, err)
	}
	s := c.Chat.Completions.NewStreaming(ctx, chat)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || acc.Choices[0].Message.Content != cr.Choices[0].Message.Content {
		t.Fatalf("chat stream %q, %v; want %q", acc.Choices[0].Message.Content, err, cr.Choices[0].Message.Content)
	}
	_ = s.Close()

	_, err = c.Completions.New(ctx, openai.CompletionNewParams{Model: "nope", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("unknown model: %v", err)
	}
}

// TestServeConcurrent sends more requests than there are slots: they queue
// and every one gets the greedy answer.
func TestServeConcurrent(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	prompts := []string{"Once upon a time", "The cat", "Lily and Tom", "One day"}
	want := map[string]string{}
	for _, p := range prompts {
		want[p] = greedy(t, p, 30)
	}
	errs := make(chan error, len(prompts))
	for _, p := range prompts {
		go func() {
			got, err := streamText(ctx, c, p, 30, nil)
			if err == nil && got != want[p] {
				err = errors.New("prompt " + p + ": got " + got)
			}
			errs <- err
		}()
	}
	for range prompts {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestServeNATSListen: `serve --nats-listen` requires authentication: a
// client without credentials is refused; a worker elsewhere joins with the
// worker token serve wrote (0600) and the gateway serves its model; a
// gateway elsewhere joins with the gateway token.
func TestServeNATSListen(t *testing.T) {
	cfg := serveConfig(t)
	cfg.NATSListen = "127.0.0.1:0"
	n := startNode(t, cfg)
	testJoinWithToken(t, n, cfg.DataDir, natsbus.ClientAuth{}, config.NATSSecurity{})
}

// TestServeNATSTLS: the same over TLS with client certificates, from a CA
// made in the test.
func TestServeNATSTLS(t *testing.T) {
	tf := testutil.NewTLSFiles(t)
	cfg := serveConfig(t)
	cfg.NATSListen = "127.0.0.1:0"
	cfg.NATS = config.NATSSecurity{TLSCert: tf.ServerCert, TLSKey: tf.ServerKey, TLSCA: tf.CA}
	n := startNode(t, cfg)
	tlsOnly := natsbus.ClientAuth{TLSCA: tf.CA, TLSCert: tf.ClientCert, TLSKey: tf.ClientKey}
	testJoinWithToken(t, n, cfg.DataDir, tlsOnly, config.NATSSecurity{TLSCA: tf.CA, TLSCert: tf.ClientCert, TLSKey: tf.ClientKey})
}

func testJoinWithToken(t *testing.T, n *node.Node, dataDir string, anon natsbus.ClientAuth, sec config.NATSSecurity) {
	t.Helper()
	if n.NATSURL() == "" {
		t.Fatal("embedded server does not listen")
	}
	if c, err := natsbus.Dial(n.NATSURL(), "anonymous", anon, nil); err == nil {
		_ = c.Close(context.Background())
		t.Fatal("a client without credentials connected")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("anonymous client: %v, want an authorization violation", err)
	}
	tokens := map[string]string{}
	for _, f := range []string{node.WorkerTokenFile, node.GatewayTokenFile} {
		p := filepath.Join(dataDir, f)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
		tokens[f] = p
	}
	wc := config.Default(config.RoleWorker)
	wc.NATSURL, wc.NATS = n.NATSURL(), sec
	wc.NATS.TokenFile = tokens[node.WorkerTokenFile]
	wc.Models = []config.Model{{Name: "remote", Path: modelPath(t)}}
	startNode(t, wc)
	gc := config.Default(config.RoleGateway)
	gc.NATSURL, gc.NATS = n.NATSURL(), sec
	gc.NATS.TokenFile = tokens[node.GatewayTokenFile]
	gw := startNode(t, gc)
	ctx := testCtx(t)
	want := greedy(t, "Once upon a time", 20)
	for _, g := range []*node.Node{n, gw} {
		if err := g.Gateway().WaitWorkers(ctx, "remote", 1); err != nil {
			t.Fatal(err)
		}
		p := completionParams("Once upon a time", 20)
		p.Model = "remote"
		c := client(t, g.Addr())
		resp, err := c.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Text; got != want {
			t.Fatalf("remote worker: %q, want %q", got, want)
		}
	}
}
