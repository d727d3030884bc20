package main

import (
	"testing"

	"courier/internal/config"
)

func TestOpenURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"[::]:9000":      "http://127.0.0.1:9000",
		"[::1]:9000":     "http://[::1]:9000",
		"":               "",
	} {
		if got := openURL(in); got != want {
			t.Errorf("openURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLogFormatFlag(t *testing.T) {
	if code := runRole(config.RoleServe, []string{"--log-format", "xml"}); code != 2 {
		t.Fatalf("--log-format xml: exit %d, want 2", code)
	}
}
