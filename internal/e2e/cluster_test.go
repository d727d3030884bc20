package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
)

// startCluster starts three in-process NATS servers routed to each other on
// loopback ports and waits until the mesh is complete.
func startCluster(t *testing.T) []*natsbus.Server {
	t.Helper()
	var nodes []*natsbus.Server
	var routes []string
	for i := range 3 {
		s, err := natsbus.StartServer(natsbus.ServerConfig{
			Name: fmt.Sprint("n", i), Listen: "127.0.0.1:0",
			ClusterName: "courier-test", ClusterListen: "127.0.0.1:0", Routes: routes,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		nodes = append(nodes, s)
		if i == 0 {
			routes = []string{"nats-route://" + s.ClusterAddr().String()}
		}
	}
	waitUntil(t, "cluster routes", func() bool {
		for _, s := range nodes {
			if s.NumRoutes() < 2 {
				return false
			}
		}
		return true
	})
	return nodes
}

// TestClusterNodeLoss runs a gateway and two workers on three NATS nodes,
// kills the node one worker is connected to while requests stream, and
// checks that every request completes with the greedy answer.
func TestClusterNodeLoss(t *testing.T) {
	nodes := startCluster(t)
	urls := func(order ...int) string {
		var us []string
		for _, i := range order {
			us = append(us, nodes[i].ClientURL())
		}
		return strings.Join(us, ",")
	}
	for i, u := range []string{urls(1), urls(2)} {
		wc := config.Default(config.RoleWorker)
		wc.NATSURL, wc.WorkerID = u, fmt.Sprint("w", i)
		wc.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
		wc.HeartbeatInterval = 100 * time.Millisecond
		startNode(t, wc)
	}
	gc := config.Default(config.RoleGateway)
	gc.NATSURL = urls(0)
	gc.HeartbeatTimeout = time.Second // tolerate a loaded machine
	gw := startNode(t, gc)
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}
	c := client(t, gw.Addr())

	prompts := []string{"Once upon a time", "The cat", "Lily and Tom", "One day"}
	const maxTokens = 150
	want := map[string]string{}
	for _, p := range prompts {
		want[p] = greedy(t, p, maxTokens)
	}
	var chunks atomic.Int64
	errs := make(chan error, len(prompts))
	for _, p := range prompts {
		go func() {
			got, err := streamText(ctx, c, p, maxTokens, func(string) { chunks.Add(1) })
			if err == nil && got != want[p] {
				err = fmt.Errorf("prompt %q:\n got %q\nwant %q", p, got, want[p])
			}
			errs <- err
		}()
	}
	waitUntil(t, "streams under way", func() bool { return chunks.Load() >= 20 })
	if err := nodes[1].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range prompts {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// waitUntil polls cond (a state with no event to wait on) for up to 20s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in 20s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
