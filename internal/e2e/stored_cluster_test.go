package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
)

// storedChat is the part of a stored chat completion this test compares.
type storedChat struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
	Choices  []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

// TestStoredCompletionsSurviveLeaderLoss stores chat completions on three
// clustered JetStream servers (separate processes), kills the server that
// leads the stored-completions bucket for good (SIGKILL, its store
// deleted), and checks that every completion stored before the kill is
// still listed and retrieved whole, that new ones are stored after it, and
// that the requests' timelines (COURIER_TIMELINE, also replicated) are kept.
func TestStoredCompletionsSurviveLeaderLoss(t *testing.T) {
	modelPath(t)
	nodes := startNATSProcs(t)
	var us []string
	for _, p := range nodes {
		us = append(us, p.url)
	}
	urls := strings.Join(us, ",")
	wc := config.Default(config.RoleWorker)
	wc.NATSURL, wc.WorkerID = urls, "w"
	wc.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
	wc.HeartbeatInterval = 100 * time.Millisecond
	startNode(t, wc)
	gw := startGatewayNode(t, urls, 0)
	t.Cleanup(func() { stopNode(t, gw) })
	if err := gw.Gateway().WaitWorkers(testCtx(t), modelName, 1); err != nil {
		t.Fatal(err)
	}
	base := "http://" + gw.Addr() + "/v1"
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	store := func(i int) (storedChat, int) {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Tell story %d"}],"max_tokens":6,"temperature":0,"store":true,"metadata":{"n":"%d"}}`, modelName, i, i)
		req, _ := http.NewRequest("POST", base+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", fmt.Sprint("cluster-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c storedChat
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
				t.Fatal(err)
			}
		}
		st := resp.StatusCode
		c.Metadata = map[string]string{"n": fmt.Sprint(i)} // kept with it, not echoed in the answer
		return c, st
	}
	const before, after = 5, 3
	made := map[string]storedChat{}
	for i := range before {
		c, st := store(i)
		if st != 200 || c.ID == "" {
			t.Fatalf("store %d: status %d", i, st)
		}
		made[c.ID] = c
	}

	// Their timelines are published in the background: wait until each
	// is kept before the kill.
	for i := range before {
		waitUntil(t, fmt.Sprintf("timeline of cluster-%d", i), func() bool {
			return httpJSON(t, "GET", base+"/requests/"+fmt.Sprint("cluster-", i), "", nil, nil) == 200
		})
	}

	probe, err := natsbus.Dial(urls, "probe", natsbus.ClientAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.Close(testCtx(t)) })
	victim := -1
	for _, a := range storeAssets(t, probe) {
		if a.Name != "KV_courier_chat_completions" {
			continue
		}
		if a.Replicas != 3 {
			t.Fatalf("%s has %d replicas, want 3", a.Name, a.Replicas)
		}
		for i, p := range nodes {
			if p.name == a.Leader {
				victim = i
			}
		}
	}
	if victim < 0 {
		t.Fatal("no leader for KV_courier_chat_completions")
	}
	if err := nodes[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = nodes[victim].cmd.Wait()
	if err := os.RemoveAll(nodes[victim].store); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("killed %s, the bucket's leader", nodes[victim].name)

	// New completions are stored once the bucket has a new leader (the
	// answer itself never waits on the store; a failed write is logged).
	for i := before; i < before+after; i++ {
		c, st := store(i)
		if st != 200 || c.ID == "" {
			t.Fatalf("chat %d after the kill: status %d", i, st)
		}
		waitUntil(t, fmt.Sprintf("completion %d retrievable after the kill", i), func() bool {
			return httpJSON(t, "GET", base+"/chat/completions/"+c.ID, "", nil, nil) == 200
		})
		made[c.ID] = c
	}
	t.Logf("%d stored after the kill in %s", after, time.Since(killed).Round(time.Millisecond))

	for id, want := range made {
		var got storedChat
		if st := httpJSON(t, "GET", base+"/chat/completions/"+id, "", nil, &got); st != 200 {
			t.Errorf("retrieve %s after the kill: %d", id, st)
			continue
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if string(wj) != string(gj) {
			t.Errorf("retrieve %s:\n got %s\nwant %s", id, gj, wj)
		}
	}
	for i := range before + after {
		var tl struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		id := fmt.Sprint("cluster-", i)
		if i >= before { // published after the kill: may still be on its way
			waitUntil(t, "timeline of "+id, func() bool {
				return httpJSON(t, "GET", base+"/requests/"+id, "", nil, nil) == 200
			})
		}
		if st := httpJSON(t, "GET", base+"/requests/"+id, "", nil, &tl); st != 200 || tl.ID != id || tl.Status != "succeeded" {
			t.Errorf("timeline %s after the kill: status %d, %+v", id, st, tl)
		}
	}
	var list struct {
		Data    []storedChat `json:"data"`
		HasMore bool         `json:"has_more"`
	}
	if st := httpJSON(t, "GET", base+"/chat/completions?limit=100", "", nil, &list); st != 200 {
		t.Fatalf("list after the kill: %d", st)
	}
	listed := map[string]bool{}
	for _, c := range list.Data {
		listed[c.ID] = true
	}
	for id := range made {
		if !listed[id] {
			t.Errorf("%s not listed after the kill", id)
		}
	}
	if len(list.Data) != len(made) {
		t.Errorf("listed %d, stored %d", len(list.Data), len(made))
	}
}
