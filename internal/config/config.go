// Package config holds the configuration of Courier's roles (serve, gateway,
// worker): plain structs with usable defaults, one Validate that reports
// every problem, and the one place where flags and the environment are
// merged into them (Bind, ApplyEnv). No other package reads flags or the
// environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"courier/internal/api"
	"courier/internal/jobs"
	"courier/internal/store"
)

// Roles.
const (
	RoleServe   = "serve"   // gateway + embedded NATS + one worker per model
	RoleGateway = "gateway" // HTTP gateway joined to external NATS
	RoleWorker  = "worker"  // model workers joined to external NATS
)

// Model is one model to serve: its name on the API and its GGUF file.
type Model struct {
	Name string
	Path string
}

// ParseModel reads "NAME=PATH", or a bare PATH whose file name (without
// .gguf) becomes the name. PATH may also be a model store name
// (ORG/REPO:QUANT, see package store), resolved when the model loads; a bare
// store name that is not an existing file is served under that name as
// written.
func ParseModel(s string) (Model, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok {
		path = s
		name = strings.TrimSuffix(filepath.Base(s), ".gguf")
		if _, err := os.Stat(s); err != nil && !strings.HasSuffix(s, ".gguf") {
			name = s
		}
	}
	if name == "" || path == "" {
		return Model{}, fmt.Errorf("config: model %q: want NAME=PATH or PATH", s)
	}
	return Model{Name: name, Path: path}, nil
}

// Node configures one process of any role.
type Node struct {
	Role string

	// Addr is the gateway's HTTP listen address (serve, gateway).
	Addr string
	// NATSURL is the external NATS server or cluster (gateway, worker);
	// comma-separated URLs for a cluster.
	NATSURL string
	// NATSListen also exposes the embedded NATS server on this address
	// (serve); "" keeps it in-process only.
	NATSListen string
	// DataDir holds the embedded server's JetStream files (serve).
	DataDir string
	// NATS is how the process secures its NATS connections (gateway,
	// worker) or its embedded server's listener (serve).
	NATS NATSSecurity
	// Models are the models to serve (serve, worker).
	Models []Model
	// Stages runs one model's layers as a pipeline of stage workers
	// (config/stage.go).
	Stages Stages
	// ModelHome is the model store folder (package store) where model
	// names that are not file paths are looked up; "" takes paths only.
	ModelHome string
	// AllowPull lets API clients pull models from the Hugging Face Hub into
	// the store and serve them (Ollama's /api/pull), and delete stored
	// models (/api/delete) (serve). Hub is where pulls go: HF_ENDPOINT
	// (default https://huggingface.co) and HF_TOKEN.
	AllowPull bool
	Hub       store.Hub

	// Upstreams are OpenAI-compatible servers fronted as workers (serve,
	// worker; config/upstream.go); UpstreamKey is their bearer key, read
	// from the variable UpstreamKeyEnv names; UpstreamTimeout bounds one
	// request to them.
	Upstreams       []Upstream
	UpstreamKeyEnv  string
	UpstreamKey     string
	UpstreamTimeout time.Duration

	// WorkerID names the worker on the bus (suffixed with "-<model>" when
	// the process serves several models); "" picks host-pid-random.
	WorkerID string

	// QueueLimit bounds the requests per model waiting for a slot.
	QueueLimit int
	// QueueLimitPerKey bounds the requests per model and API key waiting
	// for a slot (under QueueLimit); 0: no bound of its own.
	QueueLimitPerKey int
	// Slots bounds a worker's concurrent generations (the engine's
	// sequence slots, batched together); 0 takes the engine's default.
	Slots int
	// BackgroundSlots are a worker's slots for background work (batch
	// lines, async jobs) besides Slots; 0: as many as Slots.
	BackgroundSlots int
	// KVCacheBytes sizes each engine's paged KV cache; 0: every slot can
	// fill the context.
	KVCacheBytes int64
	// BatchSize is each engine's per-step token budget; 0: the engine's.
	BatchSize int
	// BackgroundBatchSize is the token budget of engine steps that run only
	// background work (batch lines); 0: the engine's.
	BackgroundBatchSize int
	// NoRepack keeps all weights in the model file's memory mapping.
	NoRepack bool
	// HeartbeatInterval is the workers' heartbeat period.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout declares a silent worker lost; 0 means three
	// intervals.
	HeartbeatTimeout time.Duration
	// StallTimeout declares a worker stalled when its heartbeats list
	// requests while its progress (engine steps, chunks sent) stands still
	// this long: the gateway takes it out of rotation and re-dispatches its
	// requests until it progresses again. 0 disables the check.
	StallTimeout time.Duration
	// PrefixAffinity sends a new request to the worker that last ran the
	// longest prefix of its text it shares with earlier requests (that
	// worker's engine probably has it in its prefix cache), when the
	// prefix is at least PrefixMinBytes long and the worker is not much
	// more loaded than the least-loaded one (docs/fabric.md).
	PrefixAffinity bool
	// PrefixMinBytes is the shortest shared prefix, in bytes of text, that
	// steers a request; 0 means 256.
	PrefixMinBytes int
	// DrainTimeout bounds a graceful stop; generations still running then
	// are cancelled.
	DrainTimeout time.Duration

	// ContextLength caps each model's context (0: the model's own); Threads
	// sizes each engine's kernel pool (0: GOMAXPROCS).
	ContextLength int
	Threads       int

	// API configures the HTTP gateway.
	API api.Config

	// Jobs configures files, batches and async jobs (gateway, serve; they
	// need JetStream on the bus).
	Jobs jobs.Config
	// BatchAckWait is how long a batch line may run unconfirmed before the
	// queue hands it to another runner (after a crash); 0 means 30 s.
	BatchAckWait time.Duration
	// BatchReserve is the slots per worker kept free of batch work for
	// interactive requests.
	BatchReserve int
	// StoreTTL is how long a stored chat completion is kept after its last
	// write (serve, gateway; "store": true or --store-all); 0 means 30
	// days.
	StoreTTL time.Duration
	// Replicas is the replica count of every JetStream stream, bucket and
	// object store behind files, batches and jobs (serve, gateway); 0: 3
	// on a cluster of at least 3 servers, else 1. Existing assets are
	// never lowered.
	Replicas int
	// TimelineTTL is how long each request's timeline is kept in
	// JetStream for GET /v1/requests (gateway, serve); 0: none kept.
	TimelineTTL time.Duration
}

// NATSSecurity is authentication and TLS on the bus. For gateway and
// worker it is the client's side: at most one of CredsFile, TokenFile and
// NkeyFile (or credentials in the --nats URL), and TLS files. For serve it
// is the embedded server's side when it listens (--nats-listen): clients
// must authenticate, with the users of AuthConfig or, without it, the
// credentials serve writes to its data dir; TLS files secure the listener.
type NATSSecurity struct {
	// CredsFile is a .creds file (JWT and nkey seed) (gateway, worker).
	CredsFile string
	// TokenFile holds a token or user:password (gateway, worker).
	TokenFile string
	// NkeyFile holds an nkey seed (gateway, worker).
	NkeyFile string
	// AuthConfig is a nats-server configuration file whose authorization
	// block lists the embedded server's users and permissions (serve); or
	// one with an operator (JWT mode), with InternalCreds.
	AuthConfig string
	// InternalCreds is the .creds file serve's own connections log in
	// with when AuthConfig names an operator (serve).
	InternalCreds string
	// TLSCert and TLSKey are the certificate presented (serve: the
	// server's; otherwise a client certificate); TLSCA is the CA that signs
	// the other side's (serve: clients must then present one).
	TLSCert, TLSKey, TLSCA string
}

// Default returns the defaults for role.
func Default(role string) Node {
	return Node{
		Role:              role,
		Addr:              "127.0.0.1:8080",
		DataDir:           "courier-data",
		QueueLimit:        64,
		HeartbeatInterval: time.Second,
		StallTimeout:      60 * time.Second,
		PrefixAffinity:    true,
		PrefixMinBytes:    256,
		DrainTimeout:      30 * time.Second,
		BatchReserve:      1,
		UpstreamTimeout:   upstreamDefaultTimeout,
		TimelineTTL:       24 * time.Hour,
	}
}

// Validate reports every problem in c, joined.
func (c Node) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("config: "+format, args...)) }
	switch c.Role {
	case RoleServe, RoleGateway, RoleWorker:
	default:
		bad("unknown role %q", c.Role)
	}
	if c.Role != RoleWorker {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			bad("--addr %q: %v", c.Addr, err)
		}
	}
	if c.Role != RoleServe && c.NATSURL == "" {
		bad("--nats URL is required for %s", c.Role)
	}
	if c.Role == RoleServe {
		if c.DataDir == "" {
			bad("--data-dir is required")
		}
		if c.NATSListen != "" {
			if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
				bad("--nats-listen %q: %v", c.NATSListen, err)
			}
		}
	}
	creds := 0
	for _, f := range []string{c.NATS.CredsFile, c.NATS.TokenFile, c.NATS.NkeyFile} {
		if f != "" {
			creds++
		}
	}
	if creds > 1 {
		bad("give at most one of --nats-creds, --nats-token-file and --nats-nkey")
	}
	if (c.NATS.TLSCert == "") != (c.NATS.TLSKey == "") {
		bad("--nats-tls-cert and --nats-tls-key go together")
	}
	if c.NATS.InternalCreds != "" && c.NATS.AuthConfig == "" {
		bad("--nats-internal-creds goes with a --nats-auth-config that names an operator")
	}
	if c.Role == RoleServe && c.NATSListen == "" && (c.NATS.AuthConfig != "" || c.NATS.TLSCert != "") {
		bad("--nats-auth-config and --nats-tls-* secure --nats-listen, which is not set")
	}
	if c.Role == RoleServe && c.NATS.TLSCA != "" && c.NATS.TLSCert == "" {
		bad("--nats-tls-ca needs --nats-tls-cert and --nats-tls-key (the server's certificate)")
	}
	// serve without a model runs the gateway and the embedded NATS
	// server alone, for workers (stage workers among them) to join.
	if c.Role == RoleWorker && len(c.Models) == 0 && len(c.Upstreams) == 0 {
		bad("at least one --model NAME=PATH or --upstream URL is required")
	}
	c.validateUpstreams(bad)
	c.validateStages(bad)
	seen := map[string]bool{}
	for _, m := range c.Models {
		if seen[m.Name] {
			bad("model %q given twice", m.Name)
		}
		seen[m.Name] = true
	}
	if c.QueueLimit < 0 || c.QueueLimitPerKey < 0 {
		bad("--queue-limit %d and --queue-limit-per-key %d must not be negative", c.QueueLimit, c.QueueLimitPerKey)
	}
	if c.KVCacheBytes < 0 || c.BatchSize < 0 || c.BackgroundBatchSize < 0 {
		bad("--kv-cache %d, --batch-size %d and --background-batch-size %d must not be negative", c.KVCacheBytes, c.BatchSize, c.BackgroundBatchSize)
	}
	if c.Slots < 0 || c.BackgroundSlots < 0 {
		bad("--slots %d and --background-slots %d must not be negative", c.Slots, c.BackgroundSlots)
	}
	if c.HeartbeatInterval <= 0 {
		bad("--heartbeat %v must be positive", c.HeartbeatInterval)
	}
	if c.HeartbeatTimeout < 0 || (c.Role == RoleServe && c.HeartbeatTimeout > 0 && c.HeartbeatTimeout <= c.HeartbeatInterval) {
		bad("--heartbeat-timeout %v must exceed the interval %v", c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if c.StallTimeout < 0 || (c.Role == RoleServe && c.StallTimeout > 0 && c.StallTimeout <= c.HeartbeatInterval) {
		bad("--stall-timeout %v must be 0 (off) or exceed the interval %v", c.StallTimeout, c.HeartbeatInterval)
	}
	if c.PrefixMinBytes < 0 {
		bad("--prefix-min-bytes %d is negative", c.PrefixMinBytes)
	}
	if c.Jobs.ResultsTTL < 0 || c.BatchAckWait < 0 || c.BatchReserve < 0 || c.Jobs.Concurrency < 0 {
		bad("--results-ttl, --batch-ack-wait, --batch-reserve and --batch-concurrency must not be negative")
	}
	if c.StoreTTL < 0 {
		bad("--store-ttl %v is negative", c.StoreTTL)
	}
	if c.TimelineTTL < 0 {
		bad("--timeline-ttl %v is negative (0: keep no timelines)", c.TimelineTTL)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("--replicas %d: JetStream allows 1 to 5 (0: automatic)", c.Replicas)
	}
	if c.DrainTimeout < 0 {
		bad("--drain-timeout %v is negative", c.DrainTimeout)
	}
	if c.ContextLength < 0 || c.Threads < 0 {
		bad("--ctx-size and --threads must not be negative")
	}
	if c.Role != RoleWorker {
		if err := c.API.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Bind registers c's flags for its role on fs; parsing fs then fills c.
func Bind(fs *flag.FlagSet, c *Node) {
	if c.Role != RoleWorker {
		fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen address")
		fs.IntVar(&c.QueueLimit, "queue-limit", c.QueueLimit, "requests per model waiting for a free slot before 429")
		fs.IntVar(&c.QueueLimitPerKey, "queue-limit-per-key", c.QueueLimitPerKey,
			"requests per model and API key waiting for a free slot before 429, so one key cannot fill the queue (0: only --queue-limit)")
		fs.Func("api-key", "accepted bearer key for /v1 (repeatable; also COURIER_API_KEYS, comma-separated)", func(s string) error {
			c.API.APIKeys = append(c.API.APIKeys, s)
			return nil
		})
		fs.Int64Var(&c.API.MaxBodyBytes, "max-body-bytes", c.API.MaxBodyBytes, "largest request body (0: default 8 MiB)")
		fs.IntVar(&c.API.MaxPromptChars, "max-prompt-chars", c.API.MaxPromptChars, "longest prompt in characters (0: default)")
		fs.IntVar(&c.API.DefaultMaxTokens, "default-max-tokens", c.API.DefaultMaxTokens, "max_tokens when a request sets none (0: default 512)")
		fs.DurationVar(&c.API.RequestTimeout, "request-timeout", c.API.RequestTimeout, "deadline for a request to start (0: default 60s)")
		fs.DurationVar(&c.API.ReadHeaderTimeout, "read-header-timeout", c.API.ReadHeaderTimeout, "a client must send its request headers within this (0: default 10s)")
		fs.DurationVar(&c.API.ReadTimeout, "read-timeout", c.API.ReadTimeout, "a client must send its request body within this after the headers; never cuts an answer (0: default 60s)")
		fs.DurationVar(&c.API.UploadTimeout, "upload-timeout", c.API.UploadTimeout, "as --read-timeout, for POST /v1/files (0: default 10m)")
		fs.DurationVar(&c.API.IdleTimeout, "idle-timeout", c.API.IdleTimeout, "close keep-alive connections idle this long (0: default 2m)")
		fs.IntVar(&c.API.MaxConns, "max-conns", c.API.MaxConns, "most open HTTP connections; more wait to be accepted (0: default 4096, -1: no cap)")
		fs.Int64Var(&c.Jobs.MaxFileBytes, "max-file-bytes", c.Jobs.MaxFileBytes, "largest uploaded file (0: default 100 MiB)")
		fs.Int64Var(&c.Jobs.MaxStoredBytesPerOwner, "max-stored-bytes-per-key", c.Jobs.MaxStoredBytesPerOwner,
			"bytes of files one API key may store, uploads and batch outputs (0: default 10 GiB, -1: no limit)")
		fs.IntVar(&c.Jobs.MaxConcurrentUploads, "max-uploads", c.Jobs.MaxConcurrentUploads, "uploads this gateway streams at once; more get 429 (0: default 4)")
		fs.DurationVar(&c.Jobs.ResultsTTL, "results-ttl", c.Jobs.ResultsTTL, "how long finished batches, their files and async job results are kept (0: 7 days)")
		fs.DurationVar(&c.BatchAckWait, "batch-ack-wait", c.BatchAckWait, "a batch line unconfirmed this long runs again elsewhere (0: 30s)")
		fs.IntVar(&c.BatchReserve, "batch-reserve", c.BatchReserve, "slots per worker kept free of batch work for interactive requests")
		fs.IntVar(&c.Jobs.Concurrency, "batch-concurrency", c.Jobs.Concurrency, "batch lines this gateway runs at once (0: 16)")
		fs.DurationVar(&c.StoreTTL, "store-ttl", c.StoreTTL, "how long a stored chat completion (store: true) is kept after its last write (0: 30 days)")
		fs.BoolVar(&c.API.StoreAll, "store-all", c.API.StoreAll,
			"keep every interactive chat completion as if sent with store: true (store: false too), for GET /v1/chat/completions")
		fs.IntVar(&c.Replicas, "replicas", c.Replicas,
			"replicas of the JetStream streams, buckets and object store holding files, batches and jobs; never lowers existing ones (0: 3 on a cluster of 3 or more servers, else 1)")
		fs.DurationVar(&c.TimelineTTL, "timeline-ttl", c.TimelineTTL,
			"how long each request's timeline (GET /v1/requests/{id}) is kept in JetStream (0: none kept)")
		fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "silence after which a worker is lost (0: 3 heartbeats)")
		fs.DurationVar(&c.StallTimeout, "stall-timeout", c.StallTimeout,
			"a worker running requests whose engine makes no progress this long is taken out of rotation and its requests move elsewhere (0: never)")
		fs.BoolVar(&c.PrefixAffinity, "prefix-affinity", c.PrefixAffinity,
			"send a request to the worker that last ran the longest prompt prefix it shares with earlier ones, unless that worker is full or much busier")
		fs.IntVar(&c.PrefixMinBytes, "prefix-min-bytes", c.PrefixMinBytes, "shortest shared prompt prefix, in bytes, that --prefix-affinity acts on")
	}
	if c.Role != RoleServe {
		fs.StringVar(&c.NATSURL, "nats", c.NATSURL, "NATS server URL(s), comma-separated (may hold user:password@ or token@)")
		fs.StringVar(&c.NATS.CredsFile, "nats-creds", c.NATS.CredsFile, "NATS .creds file (user JWT and nkey seed)")
		fs.StringVar(&c.NATS.TokenFile, "nats-token-file", c.NATS.TokenFile,
			"file holding a NATS token or user:password (serve --nats-listen writes <data-dir>/nats.token for workers)")
		fs.StringVar(&c.NATS.NkeyFile, "nats-nkey", c.NATS.NkeyFile, "file holding a NATS nkey seed")
		fs.StringVar(&c.NATS.TLSCert, "nats-tls-cert", c.NATS.TLSCert, "client certificate (PEM) for NATS servers that verify clients")
		fs.StringVar(&c.NATS.TLSKey, "nats-tls-key", c.NATS.TLSKey, "key (PEM) of --nats-tls-cert")
		fs.StringVar(&c.NATS.TLSCA, "nats-tls-ca", c.NATS.TLSCA, "CA (PEM) that signed the NATS server's certificate")
	}
	if c.Role == RoleServe {
		fs.StringVar(&c.NATSListen, "nats-listen", c.NATSListen,
			"also expose the embedded NATS server on host:port; clients must authenticate (see --nats-auth-config)")
		fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "folder for the embedded server's JetStream files")
		fs.BoolVar(&c.AllowPull, "allow-pull", c.AllowPull,
			"let API clients pull models from Hugging Face into the model store and serve them (Ollama's /api/pull) and delete stored ones (/api/delete)")
		fs.StringVar(&c.NATS.AuthConfig, "nats-auth-config", c.NATS.AuthConfig,
			"nats-server config file whose authorization block lists the users (password or nkey) and permissions of --nats-listen; "+
				"without it serve writes a worker credential to <data-dir>/nats.token and a gateway one to <data-dir>/nats-gateway.token")
		fs.StringVar(&c.NATS.InternalCreds, "nats-internal-creds", c.NATS.InternalCreds,
			"with a --nats-auth-config that names an operator (JWT mode, as nsc generate config --mem-resolver writes): "+
				"the .creds file of the user serve's own connections log in as (full rights, an account with JetStream)")
		fs.StringVar(&c.NATS.TLSCert, "nats-tls-cert", c.NATS.TLSCert, "server certificate (PEM): --nats-listen speaks TLS")
		fs.StringVar(&c.NATS.TLSKey, "nats-tls-key", c.NATS.TLSKey, "key (PEM) of --nats-tls-cert")
		fs.StringVar(&c.NATS.TLSCA, "nats-tls-ca", c.NATS.TLSCA, "CA (PEM): clients of --nats-listen must present a certificate it signed")
	}
	if c.Role != RoleGateway {
		fs.Func("model", "model to serve, NAME=PATH, PATH or a model store name such as ORG/REPO:Q8_0 (repeatable)", func(s string) error {
			m, err := ParseModel(s)
			if err != nil {
				return err
			}
			c.Models = append(c.Models, m)
			return nil
		})
		fs.StringVar(&c.WorkerID, "worker-id", c.WorkerID, "worker name on the bus (default host-pid-random)")
		bindUpstream(fs, c)
		bindStages(fs, c)
		fs.IntVar(&c.Slots, "slots", c.Slots, "concurrent generations per worker, batched together (0: the engine's default, 4)")
		fs.IntVar(&c.BackgroundSlots, "background-slots", c.BackgroundSlots,
			"slots per worker for batch lines and async jobs, besides --slots, so a batch never takes an interactive slot (0: as many as --slots)")
		fs.Func("kv-cache", "KV cache size per model, in bytes (suffixes KiB, MiB, GiB; 0: every slot can fill the context)", func(s string) error {
			n, err := ParseBytes(s)
			c.KVCacheBytes = n
			return err
		})
		fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "tokens per engine step, shared by decoding and prompt chunks (0: 256)")
		fs.IntVar(&c.BackgroundBatchSize, "background-batch-size", c.BackgroundBatchSize,
			"tokens per engine step while only batch work runs: an interactive request arriving then waits for one such step (0: 16)")
		fs.BoolVar(&c.NoRepack, "no-repack", c.NoRepack, "keep all weights memory-mapped: no packed copies of Q4_0/Q4_K weights (less memory, slower decode)")
		fs.IntVar(&c.ContextLength, "ctx-size", c.ContextLength, "context length cap (0: the model's)")
		fs.IntVar(&c.Threads, "threads", c.Threads, "kernel threads per engine (0: GOMAXPROCS); a stage worker (--stage, --layers) also runs with that many Ps when fewer than the cores, unless GOMAXPROCS is set")
	}
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", c.HeartbeatInterval, "worker heartbeat period")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "grace period for running generations on SIGTERM")
}

// ApplyEnv merges the environment (read through lookup) into c:
// COURIER_API_KEYS, comma-separated, added to the keys from flags, and the
// model store folder (COURIER_HOME, default ~/.cache/courier) when
// ModelHome is unset, the upstreams' key from the variable
// --upstream-key-env names, and the Hub of --allow-pull (HF_ENDPOINT,
// HF_TOKEN, as huggingface_hub reads them).
func ApplyEnv(c *Node, lookup func(string) (string, bool)) {
	if c.ModelHome == "" {
		c.ModelHome = store.Home(lookup)
	}
	if c.Hub.Endpoint == "" {
		c.Hub.Endpoint, _ = lookup("HF_ENDPOINT")
	}
	if c.Hub.Token == "" {
		c.Hub.Token, _ = lookup("HF_TOKEN")
	}
	applyUpstreamEnv(c, lookup)
	if v, ok := lookup("COURIER_API_KEYS"); ok {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.API.APIKeys = append(c.API.APIKeys, k)
			}
		}
	}
}

// ParseBytes reads a byte count such as "512MiB", "2GiB", "65536" or "1.5GB".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v*mult > math.MaxInt64 {
		return 0, fmt.Errorf("bad byte count %q", s)
	}
	return int64(v * mult), nil
}
