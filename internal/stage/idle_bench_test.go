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
