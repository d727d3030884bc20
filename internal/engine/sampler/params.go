package sampler

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidParams is wrapped by every error that Params.Validate, New and
// Reset return for a bad parameter; match it with errors.Is.
var ErrInvalidParams = errors.New("invalid sampling parameters")

// Params selects how the next token is drawn. The zero value is greedy with
// no penalties. For every field, 0 means "off" (see the package
// documentation for the conventions and how they map to OpenAI, vLLM and
// llama.cpp).
type Params struct {
	Temperature      float32 // 0 = greedy (argmax); must be >= 0
	TopK             int     // 0 = off; must be >= 0
	TopP             float32 // 0 or 1 = off; must be in [0, 1]
	MinP             float32 // 0 = off; must be in [0, 1]
	RepeatPenalty    float32 // 0 or 1 = off (llama.cpp/vLLM repetition_penalty); must be >= 0
	FrequencyPenalty float32 // subtracted count times; generated tokens only
	PresencePenalty  float32 // subtracted once per token present; generated tokens only
	RepeatLastN      int     // penalty window over accepted tokens; 0 = whole history
	Seed             uint64  // 0 = random, unless ExplicitSeed
	// ExplicitSeed makes Seed 0 a seed like any other: OpenAI, vLLM and
	// llama.cpp treat a client's "seed": 0 as a fixed seed, not a request
	// for a random one.
	ExplicitSeed bool
	// LogitBias is added to the logits of its tokens before every other
	// stage (OpenAI's logit_bias: -100 in effect bans a token, +100 in
	// effect forces it). Each ID at most once, biases in [-100, 100].
	LogitBias []Bias
}

// Bias adds Value to token ID's logit.
type Bias struct {
	ID    int32
	Value float32
}

// MaxBias bounds the magnitude of a Bias value, as OpenAI does.
const MaxBias = 100

// Validate reports every invalid field at once, each error naming its field
// and wrapping ErrInvalidParams.
func (p Params) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("sampler: %s = %v, want %s: %w", field, v, want, ErrInvalidParams))
	}
	if !finite(p.Temperature) || p.Temperature < 0 {
		bad("Temperature", p.Temperature, "a finite value >= 0")
	}
	if p.TopK < 0 {
		bad("TopK", p.TopK, ">= 0 (0 = off)")
	}
	if !(p.TopP >= 0 && p.TopP <= 1) { // also catches NaN
		bad("TopP", p.TopP, "a value in (0, 1] (0 = off)")
	}
	if !(p.MinP >= 0 && p.MinP <= 1) {
		bad("MinP", p.MinP, "a value in [0, 1]")
	}
	if !finite(p.RepeatPenalty) || p.RepeatPenalty < 0 {
		bad("RepeatPenalty", p.RepeatPenalty, "a finite value > 0 (0 or 1 = off)")
	}
	if !finite(p.FrequencyPenalty) {
		bad("FrequencyPenalty", p.FrequencyPenalty, "a finite value")
	}
	if !finite(p.PresencePenalty) {
		bad("PresencePenalty", p.PresencePenalty, "a finite value")
	}
	var seen map[int32]bool
	if len(p.LogitBias) > 0 {
		seen = make(map[int32]bool, len(p.LogitBias))
	}
	for _, b := range p.LogitBias {
		if b.ID < 0 {
			bad("LogitBias", b.ID, "token ids >= 0")
		}
		if seen[b.ID] {
			bad("LogitBias", b.ID, "each token id at most once")
		}
		seen[b.ID] = true
		if !finite(b.Value) || b.Value < -MaxBias || b.Value > MaxBias {
			bad("LogitBias", b.Value, "a value in [-100, 100]")
		}
	}
	if p.RepeatLastN < 0 {
		bad("RepeatLastN", p.RepeatLastN, ">= 0 (0 = whole history)")
	}
	return errors.Join(errs...)
}

// greedy reports whether p picks the argmax.
func (p Params) greedy() bool { return p.Temperature == 0 }

// repeatOn, freqOn report whether a penalty changes any logit.
func (p Params) repeatOn() bool { return p.RepeatPenalty != 0 && p.RepeatPenalty != 1 }
func (p Params) freqOn() bool   { return p.FrequencyPenalty != 0 || p.PresencePenalty != 0 }
func (p Params) penaltiesOn() bool {
	return p.repeatOn() || p.freqOn()
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }
