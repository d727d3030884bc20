package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Conn is one connection to NATS, shared by the gateway and worker hosts of
// a process. It reconnects by itself (to any node of a cluster) and buffers
// what is published meanwhile.
type Conn struct {
	nc     *nats.Conn
	log    *slog.Logger
	closed chan struct{}
}

// ClientAuth is how a client proves who it is to NATS and checks the
// server's certificate. The zero value sends only what the URL holds
// (nats://user:password@host or nats://token@host) and speaks TLS only when
// the server asks for it or the URL is tls://.
type ClientAuth struct {
	// CredsFile is a .creds file (user JWT and nkey seed; decentralized
	// auth with an operator).
	CredsFile string
	// TokenFile holds a token, or user:password (what `serve` writes to
	// <data-dir>/nats.token).
	TokenFile string
	// NkeyFile holds an nkey seed (SU...).
	NkeyFile string
	// TLSCert and TLSKey are a client certificate (for servers that verify
	// clients); TLSCA is the CA that signed the server's certificate.
	TLSCert, TLSKey, TLSCA string
}

// Validate reports a ClientAuth that names more than one credential, or
// half a client certificate.
func (a ClientAuth) Validate() error {
	n := 0
	for _, f := range []string{a.CredsFile, a.TokenFile, a.NkeyFile} {
		if f != "" {
			n++
		}
	}
	var errs []error
	if n > 1 {
		errs = append(errs, errors.New("natsbus: give at most one of a creds file, a token file and an nkey seed"))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		errs = append(errs, errors.New("natsbus: a TLS client certificate needs both its file and its key"))
	}
	return errors.Join(errs...)
}

// options turns a into nats.go options.
func (a ClientAuth) options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		if _, err := os.Stat(a.CredsFile); err != nil {
			return nil, fmt.Errorf("natsbus: creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.TokenFile != "":
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("natsbus: token file %s is empty", a.TokenFile)
		}
		if user, pass, ok := strings.Cut(tok, ":"); ok {
			opts = append(opts, nats.UserInfo(user, pass))
		} else {
			opts = append(opts, nats.Token(tok))
		}
	case a.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	return opts, nil
}

// DialOption adjusts a connection Dial makes.
type DialOption func(*[]nats.Option)

// WriteThrough has every publish on the connection write the socket at
// once, from the publishing goroutine (nats.go's WriteBufferSize(1)),
// instead of waking nats.go's flusher goroutine to write it. After a
// pause the flusher's thread has parked, and waking it is about half of a
// bus round trip over TCP (BenchmarkRoundTripTCP, and BenchmarkBoundary's
// tcp-wt in internal/stage). The node dials with it only the stage
// connections of a worker given --stage-write-through: in
// BenchmarkBoundary chunks from write-through stages reached a gateway's
// connection 1.4–2.1 ms after their sample instead of 0.24–0.56 ms, as
// messages that used to leave in one write now leave in two, and the
// second waits for a P of the one process that benchmark runs in; and
// between processes (BenchmarkProcessRoundTrip, BenchmarkStageBoundary in
// internal/e2e) it gained nothing with two Ps, and 0.1–0.3 ms a token in
// two runs with one, as stage workers of one thread now run
// (docs/architecture.md, "Writing through", "Across processes", "One P
// per kernel thread"). It costs a write system call per message, and
// is for network connections only: on an in-process connection a write
// waits for the server to read it.
func WriteThrough() DialOption {
	return func(o *[]nats.Option) { *o = append(*o, nats.WriteBufferSize(1)) }
}

// NoServer reports whether err is a dial that found no NATS server
// listening (every address refused the connection), which a later dial may
// not meet, unlike a refused credential or a bad URL.
func NoServer(err error) bool { return errors.Is(err, nats.ErrNoServers) }

// Dial connects to the NATS server(s) at url (comma-separated for a
// cluster) as auth says.
func Dial(url, name string, auth ClientAuth, log *slog.Logger, opts ...DialOption) (*Conn, error) {
	if url == "" {
		return nil, errors.New("natsbus: empty NATS URL")
	}
	nopts, err := auth.options()
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&nopts)
	}
	return connect(url, name, log, nopts...)
}

func connect(url, name string, log *slog.Logger, extra ...nats.Option) (*Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{log: log, closed: make(chan struct{})}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(20*time.Millisecond, 20*time.Millisecond),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "conn", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "conn", name, "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "conn", name, "subject", subj, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", url, err)
	}
	c.nc = nc
	return c, nil
}

// Flush returns once the server has processed everything published on c
// so far: messages published afterwards on any connection reach their
// subscribers after those.
func (c *Conn) Flush(ctx context.Context) error { return c.nc.FlushWithContext(ctx) }

// closeFlushTimeout bounds the flush with which a closing Host or
// Timelines sees its last messages reach the server. A connected server
// answers in milliseconds; a gone one never does, and without a bound
// nats.go waits its default 10 s, which a worker whose bus died added to its
// shutdown.
const closeFlushTimeout = time.Second

// errNotConnected reports a flush skipped because the connection is down:
// what was published waits in the reconnect buffer, and no server can
// confirm it.
var errNotConnected = errors.New("natsbus: not connected")

// flushOnClose flushes c for a closing user, bounded by closeFlushTimeout
// and ctx; it returns errNotConnected at once when c is not connected.
func (c *Conn) flushOnClose(ctx context.Context) error {
	if !c.nc.IsConnected() {
		return errNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, closeFlushTimeout)
	defer cancel()
	return c.nc.FlushWithContext(ctx)
}

// MaxPayload is the largest message the server accepts, in bytes.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Close drains the connection (pending messages are delivered and handled)
// and waits until it is closed or ctx is done, then closes it for good.
// A connection whose server is gone (reconnecting) has nothing it could
// drain: Close closes it and reports nothing, so a node stopping after its
// bus died says so once, not again for every connection. A drain that
// fails on a live connection is an error.
func (c *Conn) Close(ctx context.Context) error {
	if c.nc.IsClosed() {
		return nil
	}
	err := c.nc.Drain()
	if errors.Is(err, nats.ErrConnectionReconnecting) { // Drain closed it
		<-c.closed
		c.log.Debug("closed a NATS connection whose server is gone")
		return nil
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.nc.Close()
		<-c.closed
		return fmt.Errorf("natsbus: drain: %w", err)
	}
	select {
	case <-c.closed:
		return nil
	case <-ctx.Done():
		c.nc.Close()
		<-c.closed
		return fmt.Errorf("natsbus: drain: %w", ctx.Err())
	}
}
