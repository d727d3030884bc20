package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/chat"
	"courier/internal/engine"
	"courier/internal/testutil"
)

// interruptingWriter stands for the terminal: it records what the chat
// writes and, once armed, presses Ctrl-C at the first token of an answer.
type interruptingWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	s     *chatSession
	armed bool
}

func (w *interruptingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed && w.s.interrupt() {
		w.armed = false
	}
	return w.buf.Write(p)
}

// TestChatSession drives the chat loop in process with stories260K: an
// answer, the history kept and sent with the next message, /set system,
// /show system, /clear, a multi-line message, unknown commands, Ctrl-C
// during an answer (stops it, the chat goes on) and /bye.
func TestChatSession(t *testing.T) {
	e, err := engine.Load(testutil.Model(t, "stories260K.gguf"), engine.Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w := &interruptingWriter{}
	s, err := newChatSession(e, runOptions{maxTokens: 12}, w)
	if err != nil {
		t.Fatal(err)
	}
	w.s = s
	if rc := s.loop(strings.NewReader("Once upon a time\nThe end\n")); rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	if len(s.history) != 4 || s.history[0].Content != "Once upon a time" || s.history[1].Role != "assistant" ||
		s.history[1].Content == "" || s.history[2].Content != "The end" {
		t.Fatalf("history %+v\noutput %q", s.history, w.buf.String())
	}
	if n := strings.Count(w.buf.String(), ">>> "); n != 3 {
		t.Errorf("%d prompts in %q", n, w.buf.String())
	}

	w.buf.Reset()
	in := "/set system You tell stories.\n/show system\n/clear\n/set colour red\n/frob\n/set verbose\n\"\"\"Two\nlines\"\"\"\n/set quiet\n/?\n/bye\nnever read\n"
	if rc := s.loop(strings.NewReader(in)); rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	out := w.buf.String()
	for _, want := range []string{"Set the system message.", "You tell stories.\n", "Cleared the conversation.",
		`Unknown setting "colour"`, "Unknown command /frob.", ">>> ... ", "/set system TEXT", "Set verbose mode.",
		"\n\nprompt ", " tokens/s, finish ", "Set quiet mode."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if s.system != "You tell stories." || len(s.history) != 2 || s.history[0].Content != "Two\nlines" {
		t.Fatalf("system %q, history %+v", s.system, s.history)
	}

	// Ctrl-C at the first token: the answer stops, the chat goes on.
	w.buf.Reset()
	s.opts.maxTokens, s.opts.ignoreEOS = 0, true
	w.armed = true
	if rc := s.loop(strings.NewReader("Tell me a long story\n/bye\n")); rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	if out := w.buf.String(); !strings.Contains(out, " [stopped]\n") || strings.Count(out, ">>> ") != 2 || w.armed {
		t.Fatalf("Ctrl-C during an answer: %q", out)
	}
}

// TestChatUsesTemplateAndHistory: with a model that has a chat template
// (synth Llama 3's), every turn's prompt is the template rendering of the
// whole conversation so far: the prompt token counts --verbose prints are
// those of rendering and tokenizing the kept history.
func TestChatUsesTemplateAndHistory(t *testing.T) {
	e, err := engine.Load(testutil.Model(t, "synth-llama3-Q8_0.gguf"), engine.Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	info := e.Info()
	if info.ChatTemplate == "" {
		t.Fatal("the model has no chat template")
	}
	var out bytes.Buffer
	s, err := newChatSession(e, runOptions{maxTokens: 6, verbose: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	s.loop(strings.NewReader("/set system Be brief.\nHi\nAnd then?\n"))
	if len(s.history) != 4 {
		t.Fatalf("history %+v\n%s", s.history, out.String())
	}
	tmpl, err := chat.Compile(info.ChatTemplate)
	if err != nil {
		t.Fatal(err)
	}
	want := func(msgs []chat.Message) string {
		p, err := tmpl.Render(msgs, chat.Options{BOSToken: info.BOSText, EOSToken: info.EOSText, AddGenerationPrompt: true, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		toks, err := e.Tokenize(p, !strings.HasPrefix(p, info.BOSText) || info.BOSText == "", true)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("prompt %d tokens,", len(toks))
	}
	sys := chat.Message{Role: "system", Content: "Be brief."}
	first := want([]chat.Message{sys, s.history[0]})
	second := want(append([]chat.Message{sys}, s.history...)[:4])
	if i, j := strings.Index(out.String(), first), strings.LastIndex(out.String(), second); i < 0 || j <= i {
		t.Fatalf("want %q then %q in:\n%s", first, second, out.String())
	}
}

// TestChatContextFull: a conversation longer than the context is refused
// with a hint, the message is not kept, and /clear makes room again.
func TestChatContextFull(t *testing.T) {
	e, err := engine.Load(testutil.Model(t, "stories260K.gguf"), engine.Options{Slots: 1, ContextLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out bytes.Buffer
	s, err := newChatSession(e, runOptions{maxTokens: 4}, &out)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("Once upon a time there was a cat. ", 8)
	s.loop(strings.NewReader(long + "\n/clear\nHi\n"))
	if !strings.Contains(out.String(), "fills the model's context: /clear starts a new one") || len(s.history) != 2 || s.history[0].Content != "Hi" {
		t.Fatalf("history %+v\noutput %q", s.history, out.String())
	}
}

// tmux drives a terminal on a private server socket.
type tmux struct {
	t      *testing.T
	sock   string
	target string
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func (m *tmux) screen() string {
	return m.run("capture-pane", "-p", "-J", "-S", "-200", "-t", m.target)
}

// send types keys (tmux key names: Enter, C-c).
func (m *tmux) send(keys ...string) { m.run(append([]string{"send-keys", "-t", m.target}, keys...)...) }

// waitFor polls the screen until ok holds, for at most 60 s.
func (m *tmux) waitFor(what string, ok func(screen string) bool) string {
	m.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := m.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("waiting for %s; the screen:\n%s", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *tmux) waitText(text string, n int) string {
	m.t.Helper()
	return m.waitFor(fmt.Sprintf("%d× %q", n, text), func(s string) bool { return strings.Count(s, text) >= n })
}

// startTmux opens a terminal running command under a private tmux server.
func startTmux(t *testing.T, command string) *tmux {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed; CI must run the terminal tests")
		}
		t.Skip("SKIPPED LOUDLY: tmux is not installed, so the interactive chat is not tested on a terminal")
	}
	dir, err := os.MkdirTemp("", "ctmux") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	m := &tmux{t: t, sock: filepath.Join(dir, "s"), target: "chat"}
	t.Cleanup(func() {
		exec.Command("tmux", "-S", m.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	// The shell keeps the pane open after courier exits, to read its
	// status; its trap keeps it from dying of the Ctrl-Cs sent to courier
	// (a handled signal is reset to the default in courier, unlike an
	// ignored one).
	m.run("new-session", "-d", "-s", m.target, "-x", "160", "-y", "50", "sh", "-c", "trap : INT; "+command+`; echo "[exit $?]"; exec sleep 600`)
	return m
}

// buildCourier builds the binary for the terminal tests.
func buildCourier(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "courier")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunChatTerminal types into `courier run --model stories260K` on a
// real terminal (tmux) and reads the chat back: an answer, a second
// message, Up recalling an earlier one, /set system, /clear, Ctrl-C at
// the prompt (the line dropped, a hint, the chat goes on) and /bye. Then Ctrl-C during a long answer of a slower model
// stops the answer without leaving.
func TestRunChatTerminal(t *testing.T) {
	model := testutil.Model(t, "stories260K.gguf")
	bin := buildCourier(t)
	m := startTmux(t, bin+" run --model "+model+" --temperature 0 --max-tokens 24")
	m.waitText(">>> ", 1)
	m.send("Once upon a time", "Enter")
	s := m.waitText(">>> ", 2)
	answer := strings.TrimSpace(between(s, ">>> Once upon a time\n", ">>> "))
	if answer == "" {
		t.Fatalf("no answer on the screen:\n%s", s)
	}
	m.send("What happened next?", "Enter")
	m.waitText(">>> ", 3)
	// Up recalls the last messages (the line editor's history).
	m.send("Up", "Up", "Enter")
	m.waitText(">>> Once upon a time", 2)
	m.waitText(">>> ", 4)
	m.send("/set system You tell stories.", "Enter")
	m.waitText("Set the system message.", 1)
	m.send("/clear", "Enter")
	m.waitText("Cleared the conversation.", 1)
	m.send("half typed", "C-c") // Ctrl-C at the prompt drops the line
	m.waitText("Use /bye or Ctrl-D to leave.", 1)
	m.send("/bye", "Enter")
	s = m.waitText("[exit ", 1)
	if !strings.Contains(s, "[exit 0]") {
		t.Fatalf("courier run did not exit 0:\n%s", s)
	}

	// Ctrl-C during an answer: a model slow enough (35M parameters, one
	// thread, an 8192-token context) that the answer is still running.
	slow := filepath.Join(t.TempDir(), "slow.gguf")
	if rc := dispatch([]string{"models", "synth", "--dim", "384", "--layers", "6", "--heads", "6", "--ffn", "1024",
		"--ctx-size", "8192", "--type", "q8_0", "--quiet-bytes", slow}); rc != 0 {
		t.Fatalf("synth: exit %d", rc)
	}
	m = startTmux(t, bin+" run --model "+slow+" --ignore-eos --max-tokens 8000 --threads 1")
	m.waitText(">>> ", 1)
	m.send("Go on and on", "Enter")
	m.waitFor("the answer to start", func(s string) bool {
		return strings.TrimSpace(between(s, ">>> Go on and on\n", "\x00")) != ""
	})
	m.send("C-c")
	m.waitText("[stopped]", 1)
	m.waitText(">>> ", 2)
	m.send("C-d")
	s = m.waitText("[exit ", 1)
	if !strings.Contains(s, "[exit 0]") {
		t.Fatalf("courier run did not exit 0 on Ctrl-D:\n%s", s)
	}
}

// between is the text of s after the first from up to the next to (all of
// it when to does not follow).
func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	before, _, _ := strings.Cut(after, to)
	return before
}

// TestRunPipedPrompt: with no PROMPT argument and stdin not a terminal,
// `courier run` reads the prompt from stdin and generates once; an empty
// stdin is a usage error.
func TestRunPipedPrompt(t *testing.T) {
	model := testutil.Model(t, "stories260K.gguf")
	stdin := func(text string) {
		f := filepath.Join(t.TempDir(), "in")
		os.WriteFile(f, []byte(text), 0o644)
		in, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		old := os.Stdin
		os.Stdin = in
		t.Cleanup(func() { os.Stdin = old; in.Close() })
	}
	args := []string{"run", "--model", model, "--temperature", "0", "--max-tokens", "8"}
	_, want, _ := capture(t, func() int { return dispatch(append(args, "Once upon a time")) })
	stdin("Once upon a time\n")
	code, out, errOut := capture(t, func() int { return dispatch(args) })
	if code != 0 || out == "" || out != want || !strings.Contains(errOut, "generated 8 tokens") {
		t.Fatalf("piped prompt: exit %d, stdout %q (want %q), stderr %q", code, out, want, errOut)
	}
	stdin("  \n")
	code, _, errOut = capture(t, func() int { return dispatch(args) })
	if code != 2 || !strings.HasPrefix(errOut, "courier run: no prompt") {
		t.Fatalf("empty stdin: exit %d, stderr %q", code, errOut)
	}
}
