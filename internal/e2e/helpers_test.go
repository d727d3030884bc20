package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.uber.org/goleak"

	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/engine/sampler"
	"courier/internal/node"
	"courier/internal/testutil"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(natsProcessEnv); dir != "" {
		os.Exit(runNATSProcess(dir))
	}
	// nats.go's object-store Get hands chunks to its reader from the
	// subscription's goroutine through a pipe; when a node stops while a
	// read is in flight, that write can outlive the test run by a moment
	// (seen once in a full run). It is nats.go's goroutine, not ours.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*obs).Get.func2"),
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"), // see jobs_test.go
		// The courier binary built for the run (buildCourier, 43 MB) goes
		// with it: left behind, every run's copy filled the disk.
		goleak.Cleanup(func(code int) {
			if builtDir != "" {
				_ = os.RemoveAll(builtDir)
			}
			os.Exit(code)
		}))
}

const modelName = "stories260K"

func modelPath(t testing.TB) string { return testutil.Model(t, "stories260K.gguf") }

var (
	greedyMu    sync.Mutex
	greedyCache = map[string]string{}
)

// greedy is the engine's own greedy continuation of prompt, as `courier run
// --temperature 0` prints it: the reference every fabric answer must equal.
func greedy(t testing.TB, prompt string, maxTokens int) string {
	t.Helper()
	key := prompt + "\x00" + string(rune(maxTokens))
	greedyMu.Lock()
	defer greedyMu.Unlock()
	if s, ok := greedyCache[key]; ok {
		return s
	}
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids, err := e.Tokenize(prompt, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_, err = e.Generate(context.Background(), engine.Request{Prompt: ids, MaxTokens: maxTokens, Sampling: sampler.Params{}}, func(tok engine.Token) error {
		b.Write(tok.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	greedyCache[key] = b.String()
	return b.String()
}

// startNode starts cfg and stops it at the end of the test.
func startNode(t testing.TB, cfg config.Node) *node.Node {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	n, err := node.Start(context.Background(), cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

// testLog logs to stderr when COURIER_TEST_LOG is set, else nowhere.
func testLog() *slog.Logger {
	if os.Getenv("COURIER_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// client is the official OpenAI client pointed at a gateway; its idle
// connections are closed at the end of the test.
func client(t testing.TB, addr string) openai.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return openai.NewClient(
		option.WithBaseURL("http://"+addr+"/v1"),
		option.WithAPIKey("unused"),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: tr}),
	)
}

func completionParams(prompt string, maxTokens int) openai.CompletionNewParams {
	return openai.CompletionNewParams{
		Model:       modelName,
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens:   openai.Int(int64(maxTokens)),
		Temperature: openai.Float(0),
	}
}

// completeModel is the text of a greedy completion of prompt by model,
// maxTokens long, through the gateway at addr (not streamed).
func completeModel(t testing.TB, addr, model, prompt string, maxTokens int) string {
	t.Helper()
	p := completionParams(prompt, maxTokens)
	p.Model = openai.CompletionNewParamsModel(model)
	c := client(t, addr)
	resp, err := c.Completions.New(testCtx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Choices[0].Text
}

// streamText streams a greedy completion and returns its text; onChunk, if
// set, is called after every chunk with the text so far.
func streamText(ctx context.Context, c openai.Client, prompt string, maxTokens int, onChunk func(string)) (string, error) {
	s := c.Completions.NewStreaming(ctx, completionParams(prompt, maxTokens))
	defer s.Close()
	var b strings.Builder
	for s.Next() {
		for _, ch := range s.Current().Choices {
			b.WriteString(ch.Text)
		}
		if onChunk != nil {
			onChunk(b.String())
		}
	}
	return b.String(), s.Err()
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
