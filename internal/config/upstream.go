package config

import (
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Upstream is one OpenAI-compatible server a worker fronts (--upstream).
type Upstream struct {
	// Name is the model name served on the bus; "" registers every model
	// the upstream lists at GET /models under its own name.
	Name string
	// URL is the upstream's OpenAI base URL, e.g. http://host:8000/v1.
	URL string
	// Model is the upstream's own name for Name ("" means Name).
	Model string
}

// ParseUpstream reads "URL" or "NAME=URL".
func ParseUpstream(s string) (Upstream, error) {
	var u Upstream
	if i := strings.Index(s, "="); i >= 0 && !strings.Contains(s[:i], "://") {
		u.Name, u.URL = s[:i], s[i+1:]
		if u.Name == "" {
			return Upstream{}, fmt.Errorf("config: upstream %q: empty model name", s)
		}
	} else {
		u.URL = s
	}
	p, err := url.Parse(u.URL)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return Upstream{}, fmt.Errorf("config: upstream %q: want URL or NAME=URL with an http(s)://host:port/v1 URL", s)
	}
	if p.User != nil {
		return Upstream{}, fmt.Errorf("config: upstream %q: put credentials in the environment (--upstream-key-env), not in the URL", u.Name)
	}
	return u, nil
}

// bindUpstream registers the upstream flags (serve, worker).
func bindUpstream(fs *flag.FlagSet, c *Node) {
	fs.Func("upstream", "front an OpenAI-compatible server: URL (every model it lists at GET /models) or NAME=URL (one model; repeatable)", func(s string) error {
		u, err := ParseUpstream(s)
		if err != nil {
			return err
		}
		c.Upstreams = append(c.Upstreams, u)
		return nil
	})
	fs.Func("upstream-model", "the upstream's own name for the model of the --upstream NAME=URL just before it", func(s string) error {
		if len(c.Upstreams) == 0 || c.Upstreams[len(c.Upstreams)-1].Name == "" {
			return fmt.Errorf("--upstream-model %q must follow an --upstream NAME=URL", s)
		}
		c.Upstreams[len(c.Upstreams)-1].Model = s
		return nil
	})
	fs.StringVar(&c.UpstreamKeyEnv, "upstream-key-env", c.UpstreamKeyEnv, "environment variable holding the upstreams' bearer key (never a flag)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", c.UpstreamTimeout, "bound on one request to an upstream, first byte to last")
}

// applyUpstreamEnv reads the upstreams' key from the variable named by
// --upstream-key-env.
func applyUpstreamEnv(c *Node, lookup func(string) (string, bool)) {
	if c.UpstreamKeyEnv != "" {
		c.UpstreamKey, _ = lookup(c.UpstreamKeyEnv)
	}
}

// validateUpstreams reports the upstream settings' problems.
func (c Node) validateUpstreams(bad func(format string, args ...any)) {
	if len(c.Upstreams) > 0 && c.Role == RoleGateway {
		bad("--upstream is for serve and worker")
	}
	if c.UpstreamKeyEnv != "" && c.UpstreamKey == "" {
		bad("--upstream-key-env %s: the variable is empty or unset", c.UpstreamKeyEnv)
	}
	if c.UpstreamTimeout < 0 {
		bad("--upstream-timeout %v is negative", c.UpstreamTimeout)
	}
}

// upstreamDefaults is what Default sets for upstreams.
const upstreamDefaultTimeout = 10 * time.Minute
