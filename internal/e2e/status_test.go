package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"os/exec"
	"strings"
	"testing"

	"courier/internal/fleet"
)

// TestStatusAndPs: after two requests, GET /v1/status (with a key) names
// the live worker with its slots, KV cache and the prompt positions the
// second took from the prefix cache, and counts the requests and their
// tokens; `courier ps` prints the same.
func TestStatusAndPs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cfg := serveConfig(t)
	cfg.API.APIKeys = []string{"alice"}
	cfg.WorkerID = "w-status"
	n := startNode(t, cfg)
	c := client(t, n.Addr())
	ctx := testCtx(t)
	if _, err := c.Completions.New(ctx, completionParams("Once upon a time", 7)); err == nil {
		t.Fatal("a completion without the key was answered")
	}
	ca := clientKey(t, n.Addr(), "alice")
	for range 2 { // the second takes the prompt from the prefix cache
		if _, err := ca.Completions.New(ctx, completionParams("Once upon a time", 7)); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := getStatus(t, n.Addr(), ""); code != http.StatusUnauthorized {
		t.Fatalf("status without a key: %d", code)
	}
	// The gateway counts a request after its client has the answer
	// (docs/fabric.md): wait for both requests' counts, their slots back
	// and a heartbeat counting the prefix cache's positions.
	var st *fleet.Status
	waitUntil(t, "the requests counted and a heartbeat counting the prefix cache's positions", func() bool {
		var code int
		code, st = getStatus(t, n.Addr(), "alice")
		if code != http.StatusOK || len(st.Workers) != 1 {
			t.Fatalf("status: %d %+v", code, st)
		}
		reqs, _, _ := st.Recent.Recently(len(st.Recent.Requests))
		idle := len(st.Queues) == 1 && st.Queues[0].Running == 0
		return st.Workers[0].PrefixPositions > 0 && reqs == 2 && st.Workers[0].Free == 4 && idle
	})
	w := st.Workers[0]
	if w.Name != "w-status" || w.State != "ready" || w.Slots != 4 || w.Free != 4 || w.KVBlocks == 0 {
		t.Fatalf("worker %+v", w)
	}
	if reqs, tps, ttft := st.Recent.Recently(len(st.Recent.Requests)); reqs != 2 || tps <= 0 || ttft <= 0 {
		t.Fatalf("recent: %d requests, %.2f tokens/s, ttft %.2f ms: %+v", reqs, tps, ttft, st.Recent)
	}
	if len(st.Queues) != 1 || st.Queues[0].Model != modelName || !st.Timelines {
		t.Fatalf("queues %+v timelines %v", st.Queues, st.Timelines)
	}

	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "ps", "--url", "http://"+n.Addr()+"/v1", "--api-key", "alice").CombinedOutput()
	if err != nil {
		t.Fatalf("courier ps: %v\n%s", err, out)
	}
	reused := fmt.Sprintf("%d (%d)", w.PrefixPositions, w.PrefixCopiedPositions)
	for _, want := range []string{"w-status", modelName, "ready", "0/4", reused, "last minute on this gateway: 2 requests"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("courier ps lacks %q:\n%s", want, out)
		}
	}
	t.Logf("courier ps:\n%s", out)
	if out, err := exec.Command(bin, "ps", "--url", "http://"+n.Addr()+"/v1").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "API key") {
		t.Errorf("courier ps without the key: %v\n%s", err, out)
	}
}

// getStatus is GET /v1/status with key.
func getStatus(t *testing.T, addr, key string) (int, *fleet.Status) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/status", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st fleet.Status
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, &st
}

// clientKey is client with an API key.
func clientKey(t testing.TB, addr, key string) openai.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return openai.NewClient(option.WithBaseURL("http://"+addr+"/v1"), option.WithAPIKey(key),
		option.WithMaxRetries(0), option.WithHTTPClient(&http.Client{Transport: tr}))
}
