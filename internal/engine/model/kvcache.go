package model

import (
	"fmt"

	"courier/internal/engine/tensor"
)

// KVCache holds one sequence's keys and values in F16, as llama.cpp's
// default cache type does, laid out [layer][position][KVDim]. It is not safe
// for concurrent use; the caller owns one per sequence.
type KVCache struct {
	k, v   []uint16 // [Layers][capacity][KVDim]
	kvDim  int
	stride int // capacity * kvDim: one layer's span
	cap    int
	// Len is the number of positions written. Forward appends; callers may
	// shrink it to drop a suffix (e.g. to re-evaluate the last token).
	Len int
}

// NewKVCache returns a cache for up to capacity positions of cfg's model.
func NewKVCache(cfg *Config, capacity int) (*KVCache, error) {
	if capacity <= 0 || capacity > cfg.Context {
		return nil, fmt.Errorf("model: cache capacity %d outside 1..%d", capacity, cfg.Context)
	}
	kvDim := cfg.KVDim()
	n := cfg.Layers * capacity * kvDim
	return &KVCache{
		k: make([]uint16, n), v: make([]uint16, n),
		kvDim: kvDim, stride: capacity * kvDim, cap: capacity,
	}, nil
}

// Cap returns the number of positions the cache can hold.
func (c *KVCache) Cap() int { return c.cap }

// Bytes returns the cache's memory footprint.
func (c *KVCache) Bytes() int { return 2 * 2 * len(c.k) }

// row returns the K and V slots of one layer and position.
func (c *KVCache) row(layer, pos int) (k, v []uint16) {
	off := layer*c.stride + pos*c.kvDim
	return c.k[off : off+c.kvDim], c.v[off : off+c.kvDim]
}

// store writes K and V of one layer and position, rounding to F16.
func (c *KVCache) store(layer, pos int, k, v []float32) {
	kd, vd := c.row(layer, pos)
	for i := range kd {
		kd[i] = tensor.FP32ToFP16(k[i])
		vd[i] = tensor.FP32ToFP16(v[i])
	}
}
