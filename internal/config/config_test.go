package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseModel(t *testing.T) {
	existing := filepath.Join(t.TempDir(), "tiny")
	if err := os.WriteFile(existing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]Model{
		"a=/m/x.gguf":      {"a", "/m/x.gguf"},
		"/m/stories.gguf":  {"stories", "/m/stories.gguf"},
		existing:           {"tiny", existing},
		"n=/p=q/model.bin": {"n", "/p=q/model.bin"},
		// Not a file: a model store name, served under the name as written.
		"acme/tiny-GGUF:Q8_0":      {"acme/tiny-GGUF:Q8_0", "acme/tiny-GGUF:Q8_0"},
		"hf.co/acme/tiny-GGUF":     {"hf.co/acme/tiny-GGUF", "hf.co/acme/tiny-GGUF"},
		"tiny=acme/tiny-GGUF:Q8_0": {"tiny", "acme/tiny-GGUF:Q8_0"},
	} {
		got, err := ParseModel(in)
		if err != nil || got != want {
			t.Errorf("ParseModel(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "=x", "a="} {
		if _, err := ParseModel(in); err == nil {
			t.Errorf("ParseModel(%q): no error", in)
		}
	}
}

func TestBindAndValidate(t *testing.T) {
	c := Default(RoleServe)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Bind(fs, &c)
	if err := fs.Parse([]string{"--model", "s=/x.gguf", "--addr", "127.0.0.1:0", "--api-key", "k1",
		"--batch-size", "128", "--background-batch-size", "32", "--stall-timeout", "5s", "--queue-limit-per-key", "8"}); err != nil {
		t.Fatal(err)
	}
	ApplyEnv(&c, func(k string) (string, bool) { return " k2 , ,k3", k == "COURIER_API_KEYS" })
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.API.APIKeys, ",") != "k1,k2,k3" {
		t.Fatalf("keys %v", c.API.APIKeys)
	}
	if c.BatchSize != 128 || c.BackgroundBatchSize != 32 || c.QueueLimitPerKey != 8 {
		t.Fatalf("batch sizes %d, %d, queue limit per key %d", c.BatchSize, c.BackgroundBatchSize, c.QueueLimitPerKey)
	}
	if c.StallTimeout != 5*time.Second || Default(RoleGateway).StallTimeout != time.Minute {
		t.Fatalf("stall timeout %v, default %v", c.StallTimeout, Default(RoleGateway).StallTimeout)
	}

	bad := Default(RoleWorker)
	bad.QueueLimit = -1
	bad.BackgroundBatchSize = -1
	bad.Models = []Model{{"a", "x"}, {"a", "y"}}
	bad.StallTimeout = -time.Second
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"--nats", "given twice", "--queue-limit", "--background-batch-size", "--stall-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestPrefixAffinityFlags(t *testing.T) {
	d := Default(RoleGateway)
	if !d.PrefixAffinity || d.PrefixMinBytes != 256 {
		t.Fatalf("defaults: affinity %v, min %d", d.PrefixAffinity, d.PrefixMinBytes)
	}
	c := Default(RoleServe)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Bind(fs, &c)
	if err := fs.Parse([]string{"--model", "s=/x.gguf", "--prefix-affinity=false", "--prefix-min-bytes", "1024"}); err != nil {
		t.Fatal(err)
	}
	if c.PrefixAffinity || c.PrefixMinBytes != 1024 {
		t.Fatalf("parsed: affinity %v, min %d", c.PrefixAffinity, c.PrefixMinBytes)
	}
	c.PrefixMinBytes = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--prefix-min-bytes") {
		t.Fatalf("negative minimum: %v", err)
	}
	w := Default(RoleWorker)
	wfs := flag.NewFlagSet("worker", flag.ContinueOnError)
	Bind(wfs, &w)
	if wfs.Lookup("prefix-affinity") != nil {
		t.Fatal("workers have no placement flags")
	}
}

func TestNATSSecurityFlags(t *testing.T) {
	w := Default(RoleWorker)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	Bind(fs, &w)
	if err := fs.Parse([]string{"--nats", "tls://h:4222", "--model", "m=/x", "--nats-token-file", "t",
		"--nats-tls-ca", "ca.pem", "--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if w.NATS != (NATSSecurity{TokenFile: "t", TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem"}) {
		t.Fatalf("parsed %+v", w.NATS)
	}
	w.NATS = NATSSecurity{TokenFile: "t", NkeyFile: "n", TLSCert: "c.pem"}
	err := w.Validate()
	for _, want := range []string{"at most one of --nats-creds", "--nats-tls-key go together"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	s := Default(RoleServe)
	s.Models = []Model{{"m", "/x"}}
	s.NATS.TLSCert, s.NATS.TLSKey = "c", "k"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--nats-listen") {
		t.Errorf("TLS without --nats-listen: %v", err)
	}
	s.NATS = NATSSecurity{InternalCreds: "serve.creds"}
	s.NATSListen = "127.0.0.1:4222"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--nats-internal-creds goes with a --nats-auth-config") {
		t.Errorf("--nats-internal-creds alone: %v", err)
	}
	s.NATS.AuthConfig = "operator.conf"
	if err := s.Validate(); err != nil {
		t.Errorf("operator mode: %v", err)
	}
	sfs := flag.NewFlagSet("serve", flag.ContinueOnError)
	Bind(sfs, &s)
	if sfs.Lookup("nats-creds") != nil || sfs.Lookup("nats-auth-config") == nil || sfs.Lookup("nats-internal-creds") == nil {
		t.Error("serve has server-side NATS flags only")
	}
}
