package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"courier/internal/jobs"
)

// llamaServer is a llama.cpp llama-server process serving stories260K as
// modelName on addr.
type llamaServer struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startLlamaServer runs bin (llama-server) on addr with 2 slots and waits
// until it answers /health; the test's end kills it.
func startLlamaServer(t *testing.T, bin, addr string) *llamaServer {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "-m", modelPath(t), "--host", host, "--port", port, "--alias", modelName,
		"-np", "2", "-c", "1024", "-t", "1", "--log-disable")
	if os.Getenv("COURIER_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &llamaServer{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	waitUntil(t, "llama-server ready", func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// TestLlamaServerUpstream runs the upstream checks against llama.cpp's
// llama-server (set LLAMA_SERVER to its path; skipped otherwise): through
// a front Courier, greedy completions and chats, streamed and not, equal
// llama-server's own; its /slots bounds the worker's room; answers cut
// mid-stream resume to the uninterrupted text; 429s are backed off; a
// batch survives SIGKILL and restart of llama-server.
func TestLlamaServerUpstream(t *testing.T) {
	bin := os.Getenv("LLAMA_SERVER")
	if bin == "" {
		t.Skip("set LLAMA_SERVER to a llama-server binary")
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	addr := freeAddr(t)
	ls := startLlamaServer(t, bin, addr)
	direct := client(t, addr)
	ctx := testCtx(t)

	cfg := frontConfig(t, "http://"+addr+"/v1")
	cfg.Slots = 4
	front := startNode(t, cfg)
	fc := client(t, front.Addr())
	waitUntil(t, "the worker's room follows llama-server's 2 slots", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 1 && ws[0].Slots == 2
	})

	prompts := []string{"Once upon a time", "The little dog", "Lily and Ben went to the park. They"}
	for _, prompt := range prompts {
		want, err := direct.Completions.New(ctx, completionParams(prompt, 24))
		if err != nil {
			t.Fatal(err)
		}
		p := completionParams(prompt, 24)
		p.Logprobs = openai.Int(2)
		got, err := fc.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].Text != want.Choices[0].Text || got.Usage.CompletionTokens != want.Usage.CompletionTokens {
			t.Errorf("completion %q: front %q %+v, llama-server %q %+v", prompt, got.Choices[0].Text, got.Usage, want.Choices[0].Text, want.Usage)
		}
		// llama-server sends completion logprobs in chat's layout; the
		// front answers in the completions layout, one per token.
		if lp := got.Choices[0].Logprobs; strings.Join(lp.Tokens, "") != want.Choices[0].Text || len(lp.TopLogprobs) != len(lp.Tokens) {
			t.Errorf("logprobs through the front: tokens %q (want them to spell %q), %d top", lp.Tokens, want.Choices[0].Text, len(lp.TopLogprobs))
		}
		streamed, err := streamText(ctx, fc, prompt, 24, nil)
		if err != nil || streamed != want.Choices[0].Text {
			t.Errorf("streamed %q, %v; llama-server %q", streamed, err, want.Choices[0].Text)
		}
	}
	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(30),
		Temperature: openai.Float(0),
	}
	wantChat, err := direct.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatal(err)
	}
	gotChat, err := fc.Chat.Completions.New(ctx, chat)
	if err != nil || gotChat.Choices[0].Message.Content != wantChat.Choices[0].Message.Content {
		t.Errorf("chat: front %+v, %v; llama-server %q", gotChat, err, wantChat.Choices[0].Message.Content)
	}
	s := fc.Chat.Completions.NewStreaming(ctx, chat)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || len(acc.Choices) != 1 || acc.Choices[0].Message.Content != wantChat.Choices[0].Message.Content {
		t.Errorf("streamed chat %+v, %v", acc.Choices, err)
	}

	target, _ := url.Parse("http://" + addr)
	t.Run("resume", func(t *testing.T) {
		want, _ := direct.Completions.New(ctx, completionParams(prompts[0], 30))
		for _, after := range []int{3, 6, 9} {
			p := &cuttingProxy{after: after, proxy: httputil.NewSingleHostReverseProxy(target)}
			p.proxy.FlushInterval = -1
			srv := httptest.NewServer(p)
			defer srv.Close()
			f := startNode(t, frontConfig(t, srv.URL+"/v1"))
			got, err := streamText(ctx, client(t, f.Addr()), prompts[0], 30, nil)
			if err != nil || got != want.Choices[0].Text {
				t.Errorf("completion cut after %d events: %q, %v; uninterrupted %q", after, got, err, want.Choices[0].Text)
			}
			pc := &cuttingProxy{after: after, proxy: httputil.NewSingleHostReverseProxy(target)}
			pc.proxy.FlushInterval = -1
			srvc := httptest.NewServer(pc)
			defer srvc.Close()
			fcut := startNode(t, frontConfig(t, srvc.URL+"/v1"))
			cc := client(t, fcut.Addr())
			r, err := cc.Chat.Completions.New(ctx, chat)
			if err != nil || r.Choices[0].Message.Content != wantChat.Choices[0].Message.Content {
				t.Errorf("chat cut after %d events: %+v, %v; uninterrupted %q", after, r, err, wantChat.Choices[0].Message.Content)
			}
			pc.mu.Lock()
			if len(pc.bodies) != 2 {
				t.Errorf("chat cut after %d events: %d POSTs, want 2", after, len(pc.bodies))
			}
			pc.mu.Unlock()
		}
	})
	t.Run("429", func(t *testing.T) {
		p := &refusingProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
		p.proxy.FlushInterval = -1
		p.refuse.Store(3)
		srv := httptest.NewServer(p)
		defer srv.Close()
		f := startNode(t, frontConfig(t, modelName+"="+srv.URL+"/v1"))
		want, _ := direct.Completions.New(ctx, completionParams(prompts[1], 20))
		got, err := streamText(ctx, client(t, f.Addr()), prompts[1], 20, nil)
		if err != nil || got != want.Choices[0].Text {
			t.Errorf("through 3 refusals: %q, %v; want %q", got, err, want.Choices[0].Text)
		}
	})
	t.Run("batch survives SIGKILL", func(t *testing.T) {
		base := "http://" + front.Addr() + "/v1"
		const n = 200
		var in strings.Builder
		for i := range n {
			fmt.Fprintf(&in, `{"custom_id":"req-%d","method":"POST","url":"/v1/completions","body":{"model":"%s","prompt":"Once upon a time %d","max_tokens":12,"temperature":0}}`+"\n", i, modelName, i)
		}
		id := uploadBatch(t, base, []byte(in.String()))
		var b jobs.Batch
		waitUntil(t, "a fifth done", func() bool {
			httpJSON(t, "GET", base+"/batches/"+id, "", nil, &b)
			return b.RequestCounts.Completed+b.RequestCounts.Failed >= n/5
		})
		_ = ls.cmd.Process.Signal(syscall.SIGKILL)
		<-ls.done
		killedAt := b.RequestCounts
		ls = startLlamaServer(t, bin, addr)
		deadline := time.Now().Add(time.Minute)
		for b.Status != jobs.StatusCompleted {
			if time.Now().After(deadline) || b.Status == jobs.StatusFailed {
				t.Fatalf("batch %s, counts %+v", b.Status, b.RequestCounts)
			}
			time.Sleep(50 * time.Millisecond)
			httpJSON(t, "GET", base+"/batches/"+id, "", nil, &b)
		}
		resp, err := http.Get(base + "/files/" + b.OutputFileID + "/content")
		if err != nil {
			t.Fatal(err)
		}
		var data strings.Builder
		_, _ = fmt.Fprint(&data, readAll(resp))
		for _, l := range checkExactlyOnce(t, n, outputLines(t, []byte(data.String()))) {
			if l.Error != nil || l.Response.StatusCode != 200 {
				t.Errorf("%s failed", l.CustomID)
			}
		}
		t.Logf("killed llama-server at %+v; all %d lines answered once", killedAt, n)
	})
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
