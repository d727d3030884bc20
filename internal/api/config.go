package api

import (
	"errors"
	"fmt"
	"time"
)

// Defaults used where a Config field is zero.
const (
	DefaultMaxBodyBytes    = 8 << 20
	DefaultMaxPromptChars  = 1 << 20
	DefaultMaxTokens       = 512
	DefaultMaxTokensLimit  = 1 << 20
	DefaultRequestTimeout  = 60 * time.Second
	DefaultRetryAfter      = time.Second
	DefaultReadHeader      = 10 * time.Second
	DefaultReadTimeout     = 60 * time.Second
	DefaultUploadTimeout   = 10 * time.Minute
	DefaultIdleTimeout     = 120 * time.Second
	DefaultMaxConns        = 4096
	maxStopSequences       = 4
	maxTopLogprobs         = 20
	maxCompletionsLogprobs = 20
)

// Config configures the gateway. The zero value is usable: every zero field
// takes the default named beside it.
type Config struct {
	// APIKeys, when not empty, are the bearer keys accepted on /v1 routes.
	APIKeys []string
	// MaxBodyBytes caps a request body (default DefaultMaxBodyBytes); larger
	// bodies get 413.
	MaxBodyBytes int64
	// MaxPromptChars caps a prompt, or the sum of a chat's message contents,
	// in Unicode code points (default DefaultMaxPromptChars); larger get 413.
	MaxPromptChars int
	// DefaultMaxTokens is the generation limit when a request sets none
	// (default DefaultMaxTokens). The worker also stops at the context end.
	DefaultMaxTokens int
	// MaxTokensLimit is the largest max_tokens accepted (default
	// DefaultMaxTokensLimit); larger values get 400.
	MaxTokensLimit int
	// RequestTimeout bounds the wait for a request's first chunk: placing it
	// on a worker plus prefill (default DefaultRequestTimeout). Past it the
	// client gets 504. It is also the request's start deadline on the bus.
	RequestTimeout time.Duration
	// RetryAfter is the Retry-After advised with 429 (default
	// DefaultRetryAfter, rounded up to whole seconds).
	RetryAfter time.Duration
	// ModelInfo describes served models, by name, for Ollama's /api/tags,
	// /api/show and /api/ps; models absent from it are listed by name only.
	ModelInfo map[string]ModelInfo
	// Models, when set, pulls and deletes models for Ollama's /api/pull
	// and /api/delete (serve --allow-pull); nil: those routes answer 404.
	Models ModelManager
	// Timelines, when set, keeps every generation's timeline and serves
	// GET /v1/requests; nil: no timelines (those routes answer 404).
	Timelines TimelineStore

	// ReadHeaderTimeout bounds reading a request's headers (default
	// DefaultReadHeader): a client that sends them slower is disconnected.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request's body, from the end of its
	// headers (default DefaultReadTimeout); uploads have UploadTimeout.
	// It ends once the body is read, so it never cuts a streamed answer.
	ReadTimeout time.Duration
	// UploadTimeout bounds reading a POST /v1/files body (default
	// DefaultUploadTimeout).
	UploadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long (default
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxConns caps the open connections (default DefaultMaxConns;
	// negative: no cap). Connections beyond it wait in the listen
	// backlog until one closes.
	MaxConns int
	// StoreAll keeps every interactive chat completion as if it had been
	// sent with "store": true (store: false included), when the gateway
	// has a completion store (SetCompletionStore).
	StoreAll bool
}

// Validate reports every problem in c, joined.
func (c Config) Validate() error {
	var errs []error
	for i, k := range c.APIKeys {
		if k == "" {
			errs = append(errs, fmt.Errorf("api config: APIKeys[%d] is empty", i))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("api config: MaxBodyBytes %d is negative", c.MaxBodyBytes))
	}
	if c.MaxPromptChars < 0 {
		errs = append(errs, fmt.Errorf("api config: MaxPromptChars %d is negative", c.MaxPromptChars))
	}
	if c.DefaultMaxTokens < 0 {
		errs = append(errs, fmt.Errorf("api config: DefaultMaxTokens %d is negative", c.DefaultMaxTokens))
	}
	if c.MaxTokensLimit < 0 {
		errs = append(errs, fmt.Errorf("api config: MaxTokensLimit %d is negative", c.MaxTokensLimit))
	}
	if c.DefaultMaxTokens > 0 && c.DefaultMaxTokens > c.withDefaults().MaxTokensLimit {
		errs = append(errs, fmt.Errorf("api config: DefaultMaxTokens %d exceeds MaxTokensLimit", c.DefaultMaxTokens))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("api config: RequestTimeout %v is negative", c.RequestTimeout))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("api config: RetryAfter %v is negative", c.RetryAfter))
	}
	if c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.UploadTimeout < 0 || c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("api config: timeouts must not be negative (read header %v, read %v, upload %v, idle %v)",
			c.ReadHeaderTimeout, c.ReadTimeout, c.UploadTimeout, c.IdleTimeout))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxPromptChars == 0 {
		c.MaxPromptChars = DefaultMaxPromptChars
	}
	if c.DefaultMaxTokens == 0 {
		c.DefaultMaxTokens = DefaultMaxTokens
	}
	if c.MaxTokensLimit == 0 {
		c.MaxTokensLimit = DefaultMaxTokensLimit
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeader
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.UploadTimeout == 0 {
		c.UploadTimeout = DefaultUploadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	return c
}

// retryAfterSeconds is RetryAfter rounded up to whole seconds.
func (c Config) retryAfterSeconds() int {
	return int((c.RetryAfter + time.Second - 1) / time.Second)
}
