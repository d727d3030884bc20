package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/api"
	"courier/internal/bus/natsbus"
	"courier/internal/completions"
	"courier/internal/jobs"
)

// startJobs opens the job store and the completion store on the gateway's
// connection, starts the jobs manager and returns the HTTP handler with the
// jobs and stored-completions endpoints. A bus without JetStream serves the
// generation endpoints only.
func (n *Node) startJobs(ctx context.Context, reg *prometheus.Registry) (http.Handler, error) {
	st, err := natsbus.OpenJobStore(ctx, n.gwConn, natsbus.JobStoreConfig{AckWait: n.cfg.BatchAckWait, Replicas: n.cfg.Replicas})
	if errors.Is(err, natsbus.ErrNoJetStream) {
		n.log.Info("the bus has no JetStream: files, batches, async jobs and stored chat completions are off")
		h, err := api.New(n.cfg.API, n.gateway, reg, n.log)
		if err != nil {
			return nil, fmt.Errorf("node: api: %w", err)
		}
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: job store: %w", err)
	}
	kv, err := natsbus.OpenCompletionStore(ctx, n.gwConn, natsbus.CompletionStoreConfig{TTL: n.cfg.StoreTTL, Replicas: n.cfg.Replicas})
	if err != nil {
		return nil, fmt.Errorf("node: completion store: %w", err)
	}
	jc := n.cfg.Jobs
	if ack := n.cfg.BatchAckWait; ack > 0 && jc.KeepAlive == 0 {
		jc.KeepAlive = ack / 3
	}
	if n.jobs, err = jobs.New(jc, st, n.log); err != nil {
		return nil, fmt.Errorf("node: jobs: %w", err)
	}
	h, exec, err := api.NewWithJobs(n.cfg.API, n.gateway, n.jobs, reg, n.log)
	if err != nil {
		return nil, fmt.Errorf("node: api: %w", err)
	}
	api.SetCompletionStore(h, completions.New(kv))
	if err := n.jobs.Start(ctx, exec, batchCapacity{g: n.gateway, reserve: n.cfg.BatchReserve}); err != nil {
		return nil, fmt.Errorf("node: jobs: %w", err)
	}
	return h, nil
}

// batchCapacity lets batch work use the free background slots of each live
// worker (on a worker without them, its free slots beyond reserve), and
// none while any interactive request waits for a slot.
type batchCapacity struct {
	g       *natsbus.Gateway
	reserve int
}

var _ jobs.Capacity = batchCapacity{}

func (c batchCapacity) Room() int {
	for _, d := range c.g.QueueDepths() {
		if d > 0 {
			return 0
		}
	}
	room := 0
	for _, hb := range c.g.Workers() {
		switch {
		case hb.Draining || hb.Stopped:
		case hb.BackgroundSlots > 0:
			room += max(0, hb.FreeBackgroundSlots)
		default:
			room += max(0, hb.FreeSlots-c.reserve)
		}
	}
	return room
}

// startTimelines opens the request timeline stream on the gateway's
// connection and gives it to the API (--timeline-ttl 0, or a bus without
// JetStream: no timelines).
func (n *Node) startTimelines(ctx context.Context) error {
	if n.cfg.TimelineTTL <= 0 {
		return nil
	}
	t, err := natsbus.OpenTimelines(ctx, n.gwConn, natsbus.TimelineConfig{TTL: n.cfg.TimelineTTL, Replicas: n.cfg.Replicas})
	if errors.Is(err, natsbus.ErrNoJetStream) {
		n.log.Info("the bus has no JetStream: request timelines are off")
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: request timelines: %w", err)
	}
	n.timelines = t
	n.cfg.API.Timelines = t
	return nil
}
