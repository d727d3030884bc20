package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Dial connects to the NATS server(s) at url (comma-separated for a
// cluster).
func Dial(url, name string, log *slog.Logger) (*Conn, error) {
	if url == "" {
		return nil, errors.New("natsbus: empty NATS URL")
	}
	return connect(url, name, log)
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

// MaxPayload is the largest message the server accepts, in bytes.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Close drains the connection (pending messages are delivered and handled)
// and waits until it is closed or ctx is done, then closes it for good.
func (c *Conn) Close(ctx context.Context) error {
	if c.nc.IsClosed() {
		return nil
	}
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
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
