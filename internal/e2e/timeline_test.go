package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
)

// requestTimeline waits for request id's timeline, read with key ("" for
// none), and returns it decoded.
func requestTimeline(t *testing.T, addr, key, id string) map[string]any {
	t.Helper()
	var tl map[string]any
	waitUntil(t, "the timeline of "+id, func() bool {
		code, v := getTimeline(t, addr, key, id)
		tl = v
		return code == http.StatusOK
	})
	return tl
}

// getTimeline is GET /v1/requests/{id} with key.
func getTimeline(t *testing.T, addr, key, id string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/requests/"+id, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}
