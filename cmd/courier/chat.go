package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"courier/internal/chat"
	"courier/internal/engine"
)

// chatHelp is what /? prints.
const chatHelp = `Commands:
  /set system TEXT   set the system message (/set system alone clears it)
  /set verbose       print token counts and speeds after each answer (/set quiet: not)
  /show system       print the system message
  /clear             forget the conversation (the system message stays)
  /bye               leave (also Ctrl-D)
  /?, /help          this help
Ctrl-C stops an answer. A message of several lines goes between """ and """.
Up and Down recall earlier lines; arrows, Home/End and Ctrl-A/E/K/U/W edit.
`

// chatSession is an interactive chat with a loaded model: the history is
// rendered with the model's chat template for every turn (package chat;
// the plain "User: …\nAssistant:" fallback for a model without one).
type chatSession struct {
	e       *engine.Engine
	tmpl    *chat.Template
	info    engine.Info
	opts    runOptions
	system  string
	history []chat.Message
	out     io.Writer

	mu     sync.Mutex
	cancel context.CancelFunc // stops the answer being generated; nil between answers
}

// runChat opens an interactive chat on the terminal: Ctrl-C stops an
// answer (and at the prompt only says how to leave), Ctrl-D or /bye
// leaves.
func runChat(o runOptions) int {
	clear := "" // erases the loading line on a terminal
	if isTerminal(os.Stderr) {
		fmt.Fprintf(os.Stderr, "loading %s ...\r", o.model)
		clear = "\x1b[K"
	}
	e, err := loadEngine(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%scourier run: %v\n", clear, err)
		return 1
	}
	defer e.Close()
	s, err := newChatSession(e, o, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owns SIGINT while the chat runs
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-sigs:
				if !s.interrupt() {
					// The terminal dropped the line being typed.
					fmt.Fprint(s.out, "\nUse /bye or Ctrl-D to leave.\n>>> ")
				}
			}
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}()
	tmplName := "the model's chat template"
	if info := e.Info(); info.ChatTemplate == "" {
		tmplName = "no chat template: plain User:/Assistant: turns"
	}
	fmt.Fprintf(os.Stderr, "%s%s (%s, %s). /? for help, /bye or Ctrl-D to leave.\n", clear, e.Info().Name, e.Info().Arch, tmplName)
	src, err := newTermSource(os.Stdin, os.Stdout)
	if err != nil { // not a terminal after all: the terminal's own editing
		return s.loop(os.Stdin)
	}
	return s.run(src)
}

// newChatSession compiles the model's template for a chat on e.
func newChatSession(e *engine.Engine, o runOptions, out io.Writer) (*chatSession, error) {
	info := e.Info()
	t, err := chat.Compile(info.ChatTemplate)
	if err != nil {
		return nil, err
	}
	return &chatSession{e: e, tmpl: t, info: info, opts: o, out: out}, nil
}

// interrupt stops the answer being generated; false when there is none.
func (s *chatSession) interrupt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return false
	}
	s.cancel()
	return true
}

// loop reads messages and commands from in until /bye or the end of in,
// answering each message; it returns the exit status.
func (s *chatSession) loop(in io.Reader) int {
	return s.run(&bufioSource{r: bufio.NewReader(in), out: s.out})
}

// errInterrupted is a lineSource's answer to Ctrl-C at the prompt.
var errInterrupted = errors.New("interrupted")

// lineSource reads the user's lines: plain reads (a pipe, a test), or a
// line editor on a terminal (chat_term.go).
type lineSource interface {
	// line shows prompt and reads one line, without its newline.
	line(prompt string) (string, error)
}

// bufioSource reads lines from a reader, showing prompts on out.
type bufioSource struct {
	r   *bufio.Reader
	out io.Writer
}

func (b *bufioSource) line(prompt string) (string, error) {
	fmt.Fprint(b.out, prompt)
	l, err := b.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// run reads messages and commands from src until /bye or the end of the
// input, answering each message; it returns the exit status.
func (s *chatSession) run(src lineSource) int {
	for {
		line, err := readMessage(src)
		if errors.Is(err, errInterrupted) {
			fmt.Fprintln(s.out, "Use /bye or Ctrl-D to leave.")
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
				return 1
			}
			if line == "" {
				fmt.Fprintln(s.out)
				return 0
			}
		}
		text := strings.TrimSpace(line)
		switch {
		case text == "":
		case strings.HasPrefix(text, "/"):
			if s.command(text) {
				return 0
			}
		default:
			s.turn(text)
		}
		if err != nil { // the input ended after a last message
			return 0
		}
	}
}

// readMessage reads one line, or the lines between """ and """.
func readMessage(src lineSource) (string, error) {
	line, err := src.line(">>> ")
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), `"""`)
	if err != nil || !ok {
		return line, err
	}
	var b strings.Builder
	for {
		if body, end := strings.CutSuffix(rest, `"""`); end {
			b.WriteString(body)
			return b.String(), nil
		}
		b.WriteString(rest)
		b.WriteByte('\n')
		rest, err = src.line("... ")
		if err != nil {
			b.WriteString(rest)
			return b.String(), err
		}
	}
}

// command runs a /command; true means leave.
func (s *chatSession) command(text string) bool {
	name, arg, _ := strings.Cut(text, " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "/bye", "/exit", "/quit":
		return true
	case "/clear":
		s.history = nil
		fmt.Fprintln(s.out, "Cleared the conversation.")
	case "/set":
		what, val, _ := strings.Cut(arg, " ")
		switch what {
		case "verbose", "quiet":
			s.opts.verbose = what == "verbose"
			fmt.Fprintf(s.out, "Set %s mode.\n", what)
			return false
		case "system":
		default:
			fmt.Fprintf(s.out, "Unknown setting %q: /set system TEXT sets the system message, /set verbose and /set quiet the statistics.\n", what)
			return false
		}
		s.system = strings.TrimSpace(val)
		if s.system == "" {
			fmt.Fprintln(s.out, "Cleared the system message.")
		} else {
			fmt.Fprintln(s.out, "Set the system message.")
		}
	case "/show":
		if arg != "system" {
			fmt.Fprintf(s.out, "Unknown: /show %s (try /show system).\n", arg)
		} else if s.system == "" {
			fmt.Fprintln(s.out, "No system message.")
		} else {
			fmt.Fprintln(s.out, s.system)
		}
	case "/?", "/help":
		fmt.Fprint(s.out, chatHelp)
	default:
		fmt.Fprintf(s.out, "Unknown command %s. Type /? for help.\n", name)
	}
	return false
}

// turn answers text, streaming the answer to s.out, and keeps both in the
// history. An answer stopped with Ctrl-C is kept as far as it went; one
// that failed is dropped with its question.
func (s *chatSession) turn(text string) {
	msgs := make([]chat.Message, 0, len(s.history)+2)
	if s.system != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: s.system})
	}
	msgs = append(append(msgs, s.history...), chat.Message{Role: "user", Content: text})
	prompt, err := s.tmpl.Render(msgs, chat.Options{
		BOSToken: s.info.BOSText, EOSToken: s.info.EOSText, AddGenerationPrompt: true, Now: time.Now(),
	})
	if err != nil {
		fmt.Fprintf(s.out, "Error: %v\n", err)
		return
	}
	addBOS := !(s.info.BOSText != "" && strings.HasPrefix(prompt, s.info.BOSText))
	toks, err := s.e.Tokenize(prompt, addBOS, true)
	if err != nil {
		fmt.Fprintf(s.out, "Error: %v\n", err)
		return
	}
	stops := s.opts.stops
	if s.info.ChatTemplate == "" {
		// The plain fallback has no end-of-turn token: stop where the
		// model starts writing the user's next turn.
		stops = append(append([]string(nil), stops...), "\nUser:")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cancel = nil
		s.mu.Unlock()
		cancel()
	}()
	var reply strings.Builder
	res, err := s.e.Generate(ctx, engine.Request{
		Prompt: toks, MaxTokens: s.opts.maxTokens, Stop: stops, IgnoreEOS: s.opts.ignoreEOS, Sampling: s.opts.sampling(),
	}, func(t engine.Token) error {
		text := t.Text
		if reply.Len() == 0 {
			text = []byte(strings.TrimLeft(string(text), " ")) // "Assistant:" leaves a space to the model
		}
		reply.Write(text)
		_, err := s.out.Write(text)
		return err
	})
	stopped := errors.Is(err, context.Canceled)
	if err != nil && !stopped {
		fmt.Fprintf(s.out, "\nError: %v\n", err)
		if errors.Is(err, engine.ErrContextLength) {
			fmt.Fprintln(s.out, "The conversation fills the model's context: /clear starts a new one (--ctx-size sets a longer one).")
		}
		return
	}
	if stopped {
		fmt.Fprint(s.out, " [stopped]")
	}
	fmt.Fprint(s.out, "\n\n")
	if s.opts.verbose {
		fmt.Fprintln(s.out, summaryLine(res))
		fmt.Fprintln(s.out)
	}
	s.history = append(s.history, chat.Message{Role: "user", Content: text},
		chat.Message{Role: "assistant", Content: strings.TrimSpace(reply.String())})
}
