package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestPsJSONPrintsTheAnswer: `courier ps --json` prints GET /v1/status as
// the gateway answered it: fields this build does not know (from a newer
// gateway), at the top and inside a worker, survive, and nothing is added
// (no zero values of fields the gateway left out). Without --json the
// same answer prints as tables, the prefix cache's positions included.
func TestPsJSONPrintsTheAnswer(t *testing.T) {
	const status = `{"object":"status","time":1796544534,"models":["m"],` +
		`"workers":[{"name":"w1","models":["m"],"state":"ready","slots":4,"busy":1,"free":3,"active":1,` +
		`"kv_blocks":100,"free_kv_blocks":75,"kv_cache_usage":0.25,"prefix_lookups":10,"prefix_hits":4,"prefix_hit_rate":0.4,` +
		`"prefix_positions":40,"prefix_copied_positions":7,"preemptions":0,` +
		`"gpu":{"name":"future accelerator","memory_bytes":80000000000}}],` +
		`"slots":{"busy":1,"free":3},"queues":[{"model":"m","waiting":0,"running":1}],` +
		`"recent":{"bucket_seconds":10,"start":1796544500,"requests":[1],"tokens_per_second":[12.5],"ttft_ms":[30]},` +
		`"batches":[],"timelines":true,"region":"eu-west"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(status))
	}))
	defer srv.Close()

	code, out, errOut := capture(t, func() int { return dispatch([]string{"ps", "--json", "--url", srv.URL + "/v1"}) })
	if code != 0 {
		t.Fatalf("ps --json: exit %d, stderr %q", code, errOut)
	}
	var got, want any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("ps --json printed no JSON: %v\n%s", err, out)
	}
	_ = json.Unmarshal([]byte(status), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ps --json printed\n%s\nwant the gateway's answer\n%s", out, status)
	}
	if !strings.HasSuffix(out, "}\n") || !strings.Contains(out, "\n  \"region\": \"eu-west\"") {
		t.Errorf("ps --json is not indented JSON ending in a newline:\n%s", out)
	}

	code, out, errOut = capture(t, func() int { return dispatch([]string{"ps", "--url", srv.URL + "/v1"}) })
	if code != 0 || !strings.Contains(out, "w1") || !strings.Contains(out, "40 (7)") {
		t.Fatalf("ps: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}
