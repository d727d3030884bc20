package natsbus

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// Publish sends data on subject as a core NATS message (package stage's
// binary messages). data may be reused once it returns.
func (c *Conn) Publish(subject string, data []byte) error {
	if err := c.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("natsbus: publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe calls handle with each message on subject, one at a time in
// arrival order, on the connection's delivery goroutine for the
// subscription; handle may keep data. stop unsubscribes.
func (c *Conn) Subscribe(subject string, handle func(data []byte)) (stop func(), err error) {
	sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) { handle(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe %s: %w", subject, err)
	}
	// Steps are large and must not be dropped as a slow consumer's.
	_ = sub.SetPendingLimits(-1, 256<<20)
	return func() { _ = sub.Unsubscribe() }, nil
}

// Buffered is the number of bytes published on c that nats.go's writer
// has not yet written to the server; -1 once c is closed.
func (c *Conn) Buffered() int {
	n, err := c.nc.Buffered()
	if err != nil {
		return -1
	}
	return n
}
