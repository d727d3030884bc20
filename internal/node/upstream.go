package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync/atomic"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/upstream"
	"courier/internal/worker"
)

// startUpstream starts the worker fronting upstream i: its backend (which
// lists the upstream's models when u names none), worker and bus host. The
// host sends a heartbeat whenever the backend's readiness or room changes.
func (n *Node) startUpstream(ctx context.Context, i int, u config.Upstream, dial func(string) (*natsbus.Conn, error)) error {
	id := n.cfg.WorkerID
	switch {
	case id == "":
		host, _ := os.Hostname()
		var b [3]byte
		_, _ = rand.Read(b[:])
		id = fmt.Sprintf("%s-%d-%x-upstream%d", host, os.Getpid(), b, i)
	case len(n.cfg.Models)+len(n.cfg.Upstreams) > 1:
		id += fmt.Sprintf("-upstream%d", i)
	}
	slots := n.cfg.Slots
	if slots == 0 {
		slots = 4
	}
	var models map[string]string
	if u.Name != "" {
		models = map[string]string{u.Name: u.Name}
		if u.Model != "" {
			models[u.Name] = u.Model
		}
	}
	var host atomic.Pointer[natsbus.Host]
	beat := func() {
		if h := host.Load(); h != nil {
			h.Beat()
		}
	}
	be, err := upstream.New(ctx, upstream.Config{
		BaseURL: u.URL, Key: n.cfg.UpstreamKey, Models: models, Slots: slots,
		Timeout: n.cfg.UpstreamTimeout, ProbeInterval: n.cfg.HeartbeatInterval,
		OnChange: beat,
	}, n.log.With("worker", id))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	mw := &modelWorker{name: u.URL, backend: be}
	n.workers = append(n.workers, mw)
	n.log.Info("upstream worker", "upstream", be.Upstream(), "models", be.Models(), "slots", slots)
	mw.worker, err = worker.NewBackend(worker.Config{ID: id, Models: be.Models(), Slots: slots, OnChange: beat}, be, n.log)
	if err != nil {
		return err
	}
	if mw.conn, err = dial("worker " + id); err != nil {
		return err
	}
	mw.host, err = natsbus.NewHost(mw.conn, mw.worker, natsbus.HostConfig{
		Worker: id, Models: be.Models(), HeartbeatInterval: n.cfg.HeartbeatInterval,
	}, n.log)
	if err != nil {
		return err
	}
	host.Store(mw.host)
	return nil
}
