package config

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"65536": 65536, "512MiB": 512 << 20, "2GiB": 2 << 30, "1.5GB": 1.5e9, "4 KiB": 4096} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "x", "1TiB2"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}
