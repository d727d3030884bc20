package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"courier/internal/fleet"
)

// chromium finds a headless-capable Chromium: Debian's chromium package
// (what .ci/run installs). Without one the test skips loudly, or fails
// under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium package")
	}
	t.Skip("SKIPPING the dashboard test: no chromium on PATH (apt-get install chromium)")
	return ""
}

// runChromium loads url in headless Chromium with a fresh profile and
// returns what it printed (the DOM with --dump-dom).
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=8000"}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// TestDashboardInChromium loads the dashboard at / in headless Chromium:
// with the API key (given in the URL's fragment) it shows the live worker
// (with the prompt positions its prefix cache gave a repeated prompt) and a
// request made a moment before, each found in the DOM; without a key
// it asks for one. A screenshot is kept in $COURIER_TEST_ARTIFACTS (or the
// test's temporary folder).
func TestDashboardInChromium(t *testing.T) {
	bin := chromium(t)
	cfg := serveConfig(t)
	cfg.API.APIKeys = []string{"alice"}
	cfg.WorkerID = "w-dash"
	n := startNode(t, cfg)
	base := "http://" + n.Addr()

	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":8,"temperature":0}`, modelName)
	for _, id := range []string{"dash-req-0", "dash-req-1"} { // the second takes the prompt from the prefix cache
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer alice")
		req.Header.Set("X-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("completion: %s", resp.Status)
		}
	}
	requestTimeline(t, n.Addr(), "alice", "dash-req-1") // stored: the page will list it
	var w fleet.Worker
	waitUntil(t, "a heartbeat counting the prefix cache's positions", func() bool {
		code, st := getStatus(t, n.Addr(), "alice")
		if code != http.StatusOK || len(st.Workers) != 1 {
			t.Fatalf("status: %d %+v", code, st)
		}
		w = st.Workers[0]
		return w.PrefixPositions > 0
	})

	dom := runChromium(t, bin, "--dump-dom", base+"/#key=alice")
	for _, want := range []string{`data-worker="w-dash"`, `data-request="dash-req-1"`, `data-model="` + modelName + `"`,
		fmt.Sprintf(`data-prefix-positions="%d" data-prefix-copied-positions="%d"`, w.PrefixPositions, w.PrefixCopiedPositions),
		fmt.Sprintf(`>%d (%d copied)</td>`, w.PrefixPositions, w.PrefixCopiedPositions)} {
		if !strings.Contains(dom, want) {
			t.Errorf("the dashboard's DOM lacks %s:\n%s", want, dom)
		}
	}
	if !strings.Contains(dom, `<form id="key-form" hidden="">`) {
		t.Errorf("the key form shows although the key was given")
	}

	dom = runChromium(t, bin, "--dump-dom", base+"/")
	if strings.Contains(dom, `<form id="key-form" hidden="">`) || strings.Contains(dom, `data-worker=`) {
		t.Errorf("without a key the dashboard does not ask for one:\n%s", dom)
	}

	dir := os.Getenv("COURIER_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1400,1000", "--hide-scrollbars", base+"/#key=alice")
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("dashboard screenshot: %s (%d bytes)", shot, len(png))
}
