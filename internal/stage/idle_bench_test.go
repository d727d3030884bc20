package stage

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/model"
)

// BenchmarkStepAfterIdle: does a stage's compute run slower right after
// its process was idle, as a pipeline's stages are between their steps
// (the other stage computes meanwhile)? The last 4 blocks and the head of
// the 134M synthetic model (Q8_0, one kernel thread) run one decode row a
// step, and before each step the benchmark waits idle for 0, 2 or 5 ms
// (time.Sleep: the thread parks, as a stage's does waiting on the bus),
// the three in turn step by step; it reports the median µs of a step
// after each wait (us_step_idle_<ms>). Run it at one P:
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/stage/ -run XXX -bench StepAfterIdle -benchtime 200x -cpu 1
func BenchmarkStepAfterIdle(b *testing.B) {
	path := benchModelPath(b)
	total := layerCount(b, path)
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: total - 4, End: total, Total: total}, ContextLength: 512, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	idles := []time.Duration{0, 2 * time.Millisecond, 5 * time.Millisecond}
	us := make([][]float64, len(idles))
	var cache engine.StageCache
	m := fuzzStep(1, st.Dim())
	m.Context, m.KVBlocks, m.KVBlockSize = 512, 32, 16
	m.Tables = [][]int32{make([]int32, 32)}
	for i := range m.Tables[0] {
		m.Tables[0][i] = int32(i)
	}
	pos := 0
	for b.Loop() {
		for k, idle := range idles {
			if pos == 480 { // the context is full: start again
				pos, m.Opens, cache = 0, true, engine.StageCache{}
			}
			m.Pos[0] = int32(pos)
			if idle > 0 {
				time.Sleep(idle)
			}
			t0 := time.Now()
			if _, err := st.Step(&cache, &m.StageStep); err != nil {
				b.Fatal(err)
			}
			us[k] = append(us[k], float64(time.Since(t0).Nanoseconds())/1e3)
			m.Opens = false
			pos++
		}
	}
	for k, idle := range idles {
		b.ReportMetric(medianOf(us[k]), fmt.Sprintf("us_step_idle_%d", idle.Milliseconds()))
	}
}

// medianOf is the middle value of v (sorted in place).
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkSplitCompute: does splitting the layers over two stages cost
// compute by itself, in one process with nothing between them? Blocks 1
// to the end and the head of the 134M synthetic model (Q8_0, one kernel
// thread) run as one stage ("one") and as two, blocks [1, 8) and the rest
// with the head ("split", the second fed the first's rows), one decode row
// a step, the two in turn step by step; it reports the median µs of a
// step of each (us_one, us_split) and their ratio (x_split: split / one,
// the median over steps):
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/stage/ -run XXX -bench SplitCompute -benchtime 200x -cpu 1
func BenchmarkSplitCompute(b *testing.B) {
	path := benchModelPath(b)
	total := layerCount(b, path)
	load := func(first, end int) *engine.Stage {
		st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: first, End: end, Total: total}, ContextLength: 512, Threads: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	one, a, z := load(1, total), load(1, 8), load(8, total)
	var cOne, cA, cZ engine.StageCache
	m := fuzzStep(1, one.Dim())
	m.Context, m.KVBlocks, m.KVBlockSize = 512, 32, 16
	m.Tables = [][]int32{make([]int32, 32)}
	for i := range m.Tables[0] {
		m.Tables[0][i] = int32(i)
	}
	hidden := m.Hidden
	var usOne, usSplit, ratio []float64
	pos := 0
	for b.Loop() {
		if pos == 480 {
			pos, m.Opens = 0, true
			cOne, cA, cZ = engine.StageCache{}, engine.StageCache{}, engine.StageCache{}
		}
		m.Pos[0] = int32(pos)
		m.Hidden = hidden
		t0 := time.Now()
		if _, err := one.Step(&cOne, &m.StageStep); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		h, err := a.Step(&cA, &m.StageStep)
		if err != nil {
			b.Fatal(err)
		}
		m.Hidden = h
		if _, err := z.Step(&cZ, &m.StageStep); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		o, sp := float64(t1.Sub(t0).Nanoseconds())/1e3, float64(t2.Sub(t1).Nanoseconds())/1e3
		usOne, usSplit, ratio = append(usOne, o), append(usSplit, sp), append(ratio, sp/o)
		m.Opens = false
		pos++
	}
	b.ReportMetric(medianOf(usOne), "us_one")
	b.ReportMetric(medianOf(usSplit), "us_split")
	b.ReportMetric(medianOf(ratio), "x_split")
}
