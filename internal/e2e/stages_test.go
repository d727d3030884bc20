package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/node"
	"courier/internal/stage"
	"courier/internal/testutil"
)

// startStageProcess runs `courier worker --stage` (or --layers) for model
// name at path against natsURL until the test ends or kills it.
func startStageProcess(t *testing.T, bin, natsURL, id, name, path string, share ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"worker", "--nats", natsURL, "--worker-id", id, "--model", name + "=" + path,
		"--heartbeat", "200ms", "--log-level", "warn"}, share...)
	return startProcess(t, bin, args...)
}

// greedyOf is the whole model's greedy text of prompt, from the engine in
// this process.
func greedyOf(t *testing.T, path, prompt string, maxTokens int) string {
	t.Helper()
	e, err := engine.Load(path, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids, err := e.Tokenize(prompt, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := e.Generate(context.Background(), engine.Request{Prompt: ids, MaxTokens: maxTokens}, func(tok engine.Token) error {
		b.Write(tok.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// externalNATS starts a NATS server (with JetStream, which gateways use)
// listening on loopback for worker processes to join over TCP.
func externalNATS(t testing.TB) *natsbus.Server {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "ext", Listen: "127.0.0.1:0", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

// stageGateway starts a gateway on srv and waits (bounded) until each of
// names has a ready worker (a first stage is ready once its pipeline is
// complete).
func stageGateway(t testing.TB, srv *natsbus.Server, names ...string) *node.Node {
	t.Helper()
	gc := config.Default(config.RoleGateway)
	gc.NATSURL = srv.ClientURL()
	gc.HeartbeatTimeout = time.Second
	gc.Addr = "127.0.0.1:0"
	gw := startNode(t, gc)
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for !slices.ContainsFunc(gw.Gateway().Workers(), func(hb bus.Heartbeat) bool { return slices.Contains(hb.Models, name) && !hb.Unready }) {
			if time.Now().After(deadline) {
				t.Fatalf("no ready worker for %s within 30s", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return gw
}

// lastStageEmitted watches the announcements of stage instance of model;
// the function it returns waits (bounded) until one counts at least n
// chunks emitted (stage.Announce.Emitted), and fails the test otherwise.
func lastStageEmitted(t *testing.T, srv *natsbus.Server, model, instance string) func(n uint64) {
	t.Helper()
	count := announcedEmitted(t, srv.Connect, model, instance)
	return func(n uint64) {
		t.Helper()
		if got := count(n); got < n {
			t.Errorf("stage %s announced %d chunks emitted, want at least %d", instance, got, n)
		}
	}
}

// announced returns a channel closed when stage instance of model first
// announces itself.
func announced(t *testing.T, srv *natsbus.Server, model, instance string) <-chan struct{} {
	t.Helper()
	conn, err := srv.Connect("watch-join-" + instance)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	up := make(chan struct{})
	var once sync.Once
	stop, err := conn.Subscribe(stage.AnnounceSubject(model, instance), func([]byte) { once.Do(func() { close(up) }) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return up
}

// wholeAndStaged starts a whole-model node and a 2-stage one ("st") of the
// test model, each with slots generations at once (0: the default), and
// returns once the staged node's first stage is ready and its heartbeat
// satisfies ready (nil: nothing more).
func wholeAndStaged(t *testing.T, slots int, ready func(bus.Heartbeat) bool) (wn, sn *node.Node) {
	t.Helper()
	whole := serveConfig(t)
	staged := serveConfig(t)
	staged.WorkerID = "st"
	staged.Stages.Count = 2
	staged.HeartbeatInterval = 200 * time.Millisecond
	if slots > 0 {
		whole.Slots, staged.Slots = slots, slots
	}
	wn, sn = startNode(t, whole), startNode(t, staged)
	waitUntil(t, "a ready first stage", func() bool {
		return slices.ContainsFunc(sn.Gateway().Workers(), func(hb bus.Heartbeat) bool {
			return !hb.Unready && (ready == nil || ready(hb))
		})
	})
	return wn, sn
}

// announcedEmitted counts the chunks stage instance of model announces it
// emitted (stage.Announce.Emitted), on a connection made by connect; the
// function it returns waits (bounded) until the count reaches want and
// returns it.
func announcedEmitted(t *testing.T, connect func(name string) (*natsbus.Conn, error), model, instance string) func(want uint64) uint64 {
	t.Helper()
	conn, err := connect("watch-" + instance)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var mu sync.Mutex
	var most uint64
	stop, err := conn.Subscribe(stage.AnnounceSubject(model, instance), func(data []byte) {
		var a stage.Announce
		if json.Unmarshal(data, &a) == nil {
			mu.Lock()
			most = max(most, a.Emitted)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return func(want uint64) uint64 {
		var got uint64
		for range 500 { // 5s: the stages announce every 200ms
			mu.Lock()
			got = most
			mu.Unlock()
			if got >= want {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return got
	}
}

// TestStagesOverTCP serves models as 2- and 3-stage pipelines of separate
// `courier worker --stage I/N` processes joined by a NATS server over TCP,
// and checks that greedy text through the HTTP API equals the whole
// model's, streamed by the last stage. The shared synthetic llama and
// qwen2 files have two blocks, too few for three stages (each holds at
// least one), so their 3-stage runs take 4-block models of the same
// architectures and shapes that the test writes (synth.Write).
func TestStagesOverTCP(t *testing.T) {
	bin := courierBinary(t)
	const prompt = "Once upon a time"
	four := func(arch string) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "synth-"+arch+"-4.gguf")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			c := synth.Config{Arch: arch, Dim: 256, Layers: 4, Heads: 8, KVHeads: 2, FFN: 512, Vocab: 1000,
				Context: 512, Type: gguf.TypeF32, Seed: 1, QuietBytes: true}
			if err := synth.Write(f, c); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	shared := func(file string) func(t *testing.T) string {
		return func(t *testing.T) string { return testutil.Model(t, file) }
	}
	for _, tc := range []struct {
		name   string
		model  func(t *testing.T) string
		stages int
	}{
		{"stories260K", shared("stories260K.gguf"), 2}, {"stories260K", shared("stories260K.gguf"), 3},
		{"synth-llama-F32", shared("synth-llama-F32.gguf"), 2}, {"synth-qwen2-F32", shared("synth-qwen2-F32.gguf"), 2},
		{"synth-llama-4", four("llama"), 3}, {"synth-qwen2-4", four("qwen2"), 3},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.name, tc.stages), func(t *testing.T) {
			path, name := tc.model(t), tc.name
			want := greedyOf(t, path, prompt, 48)
			srv := externalNATS(t)
			for i := tc.stages; i >= 1; i-- {
				args := []string{"--stage", fmt.Sprintf("%d/%d", i, tc.stages)}
				if tc.stages == 3 {
					args = append(args, "--stage-write-through") // the stage connections write through
				}
				startStageProcess(t, bin, srv.ClientURL(), fmt.Sprintf("s%d", i), name, path, args...)
			}
			gw := stageGateway(t, srv, name)
			emitted := lastStageEmitted(t, srv, name, fmt.Sprintf("s%d", tc.stages))
			if got := completeModel(t, gw.Addr(), name, prompt, 48); got != want {
				t.Errorf("%d-stage pipeline:\n%q\nwhole model:\n%q", tc.stages, got, want)
			}
			// The last stage sent the chunks: 48 tokens and the final one.
			emitted(49)
		})
	}
}

// TestKillStageMidStream SIGKILLs a later stage of a pipeline of separate
// processes while it streams an answer: the last stage of 2 (the one that
// emits the chunks), and the middle and the last stage of 3. The first
// stage gives the request back, the pipeline is assembled again with the
// other replica of that stage, the gateway resumes the request after the
// text already sent, and the client's text equals the uninterrupted greedy
// run.
func TestKillStageMidStream(t *testing.T) {
	for _, tc := range []struct{ victim, stages int }{{2, 2}, {2, 3}, {3, 3}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.victim, tc.stages), func(t *testing.T) {
			killStageMidStream(t, tc.victim, tc.stages)
		})
	}
}

// killStageMidStream runs a pipeline of stages separate stage processes
// with a spare replica of share victim, SIGKILLs the replica the pipeline
// formed through while it streams, and checks the client's text.
func killStageMidStream(t *testing.T, victim, stages int) {
	path := modelPath(t)
	bin := courierBinary(t)
	srv := externalNATS(t)
	share := func(i int) []string { return []string{"--stage", fmt.Sprintf("%d/%d", i, stages)} }
	// The replica that will die serves alone until the pipeline has
	// formed through it; then the spare joins.
	var dies *exec.Cmd
	for i := stages; i >= 1; i-- {
		id := fmt.Sprintf("s%d", i)
		if i == victim {
			id += "-a"
		}
		cmd := startStageProcess(t, bin, srv.ClientURL(), id, modelName, path, share(i)...)
		if i == victim {
			dies = cmd
		}
	}
	gw := stageGateway(t, srv, modelName)
	spareID, deadID := fmt.Sprintf("s%d-b", victim), fmt.Sprintf("s%d-a", victim)
	spare := announced(t, srv, modelName, spareID)
	var emittedB func(uint64)
	if victim == stages {
		emittedB = lastStageEmitted(t, srv, modelName, spareID)
	}
	startStageProcess(t, bin, srv.ClientURL(), spareID, modelName, path, share(victim)...)
	ctx := testCtx(t)
	select {
	case <-spare:
	case <-ctx.Done():
		t.Fatal("the spare stage never announced itself")
	}

	const prompt, maxTokens = "Once upon a time", 400
	want := greedy(t, prompt, maxTokens)
	var killed bool
	var kill sync.Once
	got, resumed, err := streamRaw(ctx, gw.Addr(), prompt, maxTokens, func(text string) {
		if len(text) < 100 {
			return
		}
		kill.Do(func() {
			killed = true
			if err := dies.Process.Signal(syscall.SIGKILL); err != nil {
				t.Error(err)
			}
		})
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !killed {
		t.Fatal("the stream ended before the stage was killed")
	}
	if got != want {
		t.Fatalf("after killing stage %s the client got\n%q\nwant\n%q", deadID, got, want)
	}
	if len(resumed) == 0 || resumed[len(resumed)-1].attempt < 2 || resumed[len(resumed)-1].after == len(got) {
		t.Fatalf("killed stage %s, but the stream shows no resumed attempt with text after it: %+v", deadID, resumed)
	}
	t.Logf("killed %s mid-stream; attempt %d carried on after byte %d; the answer is complete (%d bytes)",
		deadID, resumed[len(resumed)-1].attempt, resumed[len(resumed)-1].after, len(got))
	if emittedB != nil {
		// The spare last stage sent the chunks after the kill.
		emittedB(1)
	}
}

// TestServeStagesInOneProcess runs `serve --stages 3 --first-stages 2`:
// the model's three stages in one process, two first stages sharing the
// later ones, joined by the embedded NATS server; concurrent answers equal
// the whole model's.
func TestServeStagesInOneProcess(t *testing.T) {
	path := modelPath(t)
	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.Models = []config.Model{{Name: modelName, Path: path}}
	cfg.Stages.Count, cfg.Stages.Firsts = 3, 2
	cfg.HeartbeatInterval = 200 * time.Millisecond
	n := startNode(t, cfg)
	waitUntil(t, "two ready first stages", func() bool {
		ready := 0
		for _, hb := range n.Gateway().Workers() {
			if !hb.Unready {
				ready++
			}
		}
		return ready == 2
	})
	const prompt = "Lily and Ben went to the park"
	want := greedy(t, prompt, 64)
	c := client(t, n.Addr())
	var wg sync.WaitGroup
	for range 4 { // spread over both first stages
		wg.Go(func() {
			resp, err := c.Completions.New(testCtx(t), completionParams(prompt, 64))
			if err != nil {
				t.Error(err)
				return
			}
			if got := resp.Choices[0].Text; got != want {
				t.Errorf("serve --stages 3 --first-stages 2:\n%q\nwhole model:\n%q", got, want)
			}
		})
	}
	wg.Wait()
}

// TestKillFirstStageMidStream runs two first stages through one second
// stage and SIGKILLs the first stage streaming an answer: the gateway
// resumes the request on the other first stage (the ordinary lost-worker
// path), whose pipeline through the same second stage carries on, and the
// client's text equals the uninterrupted greedy run.
func TestKillFirstStageMidStream(t *testing.T) {
	path := modelPath(t)
	bin := courierBinary(t)
	srv := externalNATS(t)
	startStageProcess(t, bin, srv.ClientURL(), "s2", modelName, path, "--stage", "2/2")
	firsts := map[string]*exec.Cmd{
		"s1-a": startStageProcess(t, bin, srv.ClientURL(), "s1-a", modelName, path, "--stage", "1/2"),
		"s1-b": startStageProcess(t, bin, srv.ClientURL(), "s1-b", modelName, path, "--stage", "1/2"),
	}
	gw := stageGateway(t, srv, modelName)
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}
	const prompt, maxTokens = "Once upon a time", 400
	want := greedy(t, prompt, maxTokens)
	pw := watchPlacements(t, srv.ClientURL())
	var killed string
	var once sync.Once
	got, resumed, err := streamRaw(ctx, gw.Addr(), prompt, maxTokens, func(text string) {
		if len(text) < 100 {
			return
		}
		once.Do(func() {
			killed = killStreamingWorker(t, pw, firsts)
		})
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if killed == "" {
		t.Fatal("the stream ended before a first stage was killed")
	}
	if got != want {
		t.Fatalf("after killing %s the client got\n%q\nwant\n%q", killed, got, want)
	}
	if len(resumed) == 0 || resumed[len(resumed)-1].worker == killed || resumed[len(resumed)-1].after == len(got) {
		t.Fatalf("killed %s, but the stream shows no resume on the other first stage with text after it: %+v", killed, resumed)
	}
}

// TestStagesBackToBack runs `serve --stages 2 --slots 1`, whose last stage
// emits the chunks, and sends completions one after another, each as soon
// as the previous answer came (the gateway sees a final chunk a hop
// before the first stage frees its one slot; an offer refused then is
// placed on the heartbeat the worker sends when it frees the slot,
// TestSlotFreedAfterRefusalPlaces in natsbus): every one is answered with
// the whole model's text, every other one cut at a stop string, which the
// last stage finds and the first stage ends the generation on.
func TestStagesBackToBack(t *testing.T) {
	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
	cfg.Stages.Count, cfg.Slots = 2, 1
	cfg.HeartbeatInterval = 200 * time.Millisecond
	n := startNode(t, cfg)
	waitUntil(t, "a ready first stage", func() bool {
		return slices.ContainsFunc(n.Gateway().Workers(), func(hb bus.Heartbeat) bool { return !hb.Unready })
	})
	const prompt = "Once upon a time"
	want := greedy(t, prompt, 48)
	stop := want[len(want)/2 : len(want)/2+3]
	cut := want[:strings.Index(want, stop)]
	c := client(t, n.Addr())
	for i := range 6 {
		p, wantText, wantFinish := completionParams(prompt, 48), want, openai.CompletionChoiceFinishReasonLength
		if i%2 == 1 {
			p.Stop = openai.CompletionNewParamsStopUnion{OfString: openai.String(stop)}
			wantText, wantFinish = cut, openai.CompletionChoiceFinishReasonStop
		}
		resp, err := c.Completions.New(testCtx(t), p)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := resp.Choices[0]; got.Text != wantText || got.FinishReason != wantFinish {
			t.Fatalf("request %d (stop string: %v): %q, %s\nwant %q, %s", i, i%2 == 1, got.Text, got.FinishReason, wantText, wantFinish)
		}
	}
}
