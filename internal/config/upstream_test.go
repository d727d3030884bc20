package config

import (
	"flag"
	"strings"
	"testing"
)

func TestUpstreamFlags(t *testing.T) {
	c := Default(RoleWorker)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	Bind(fs, &c)
	err := fs.Parse([]string{"--nats", "nats://127.0.0.1:4222", "--upstream", "http://127.0.0.1:8000/v1",
		"--upstream", "llama=http://10.0.0.5:8000/v1", "--upstream-model", "meta/Llama-3", "--upstream-key-env", "UP_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Upstream{{URL: "http://127.0.0.1:8000/v1"}, {Name: "llama", URL: "http://10.0.0.5:8000/v1", Model: "meta/Llama-3"}}
	if len(c.Upstreams) != 2 || c.Upstreams[0] != want[0] || c.Upstreams[1] != want[1] {
		t.Fatalf("upstreams %+v, want %+v", c.Upstreams, want)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "UP_KEY") {
		t.Errorf("an unset key variable: %v", err)
	}
	ApplyEnv(&c, func(k string) (string, bool) {
		if k == "UP_KEY" {
			return "sekret", true
		}
		return "", false
	})
	if c.UpstreamKey != "sekret" {
		t.Errorf("key %q", c.UpstreamKey)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid upstream worker: %v", err)
	}
}

func TestParseUpstreamRejects(t *testing.T) {
	for _, s := range []string{"", "ftp://x/v1", "m=", "=http://x/v1", "http://user:pw@127.0.0.1:8000/v1", "m=localhost:8000"} {
		if _, err := ParseUpstream(s); err == nil {
			t.Errorf("ParseUpstream(%q) accepted", s)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseUpstream(%q) error shows the password: %v", s, err)
		}
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	c := Default(RoleWorker)
	Bind(fs, &c)
	fs.SetOutput(new(strings.Builder))
	if err := fs.Parse([]string{"--upstream-model", "x"}); err == nil {
		t.Error("--upstream-model without an --upstream NAME=URL before it was accepted")
	}
}
