package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// HopProbe measures the raw NATS request-reply hop on a connection: a
// responder that echoes, and timed requests to it. Benchmarks report it
// beside the fabric's latency so both come from the same run.
type HopProbe struct {
	conn    *Conn
	subject string
	sub     *nats.Subscription
	payload []byte
}

// NewHopProbe subscribes an echo responder on conn; payload is the request
// size in bytes.
func NewHopProbe(conn *Conn, payload int) (*HopProbe, error) {
	subj := nats.NewInbox() + ".probe"
	sub, err := conn.nc.Subscribe(subj, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("natsbus: probe subscribe: %w", err)
	}
	if err := conn.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natsbus: probe flush: %w", err)
	}
	return &HopProbe{conn: conn, subject: subj, sub: sub, payload: make([]byte, payload)}, nil
}

// RoundTrip sends one request and returns how long the reply took.
func (p *HopProbe) RoundTrip(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	if _, err := p.conn.nc.RequestWithContext(ctx, p.subject, p.payload); err != nil {
		return 0, fmt.Errorf("natsbus: probe: %w", err)
	}
	return time.Since(t0), nil
}

// Close removes the responder.
func (p *HopProbe) Close() error { return p.sub.Unsubscribe() }
