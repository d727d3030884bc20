package stage

import (
	"context"
	"runtime"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/model"
	"courier/internal/testutil"
)

// TestServerYieldsWithStepsQueued: with one P (GOMAXPROCS 1, as a stage
// worker of --threads 1 runs) and several steps in flight, a stage server
// writes a step's answer to the bus before it computes the next step that
// is already queued. nats.go's Publish only buffers and wakes its writer
// goroutine, and its delivery goroutine calls the handler again at once
// when the next step is queued, so without the server's yield after a
// step (yieldOneP) the writer would run only once the handler blocks or
// is preempted, after the next step's layers: the first stage would wait
// a whole step for the answer it needs to go on. Two steps and a marker
// are published back to back; the first step's handler waits until the
// marker has reached the server's connection (so the second step is
// queued behind it, on the same connection), and when the second step
// starts, nothing of the first step's answer may be left in the
// connection's write buffer. Over TCP on loopback, as stage processes are
// joined.
func TestServerYieldsWithStepsQueued(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "t", DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	dial := func(name string) *natsbus.Conn {
		c, err := natsbus.Dial(srv.ClientURL(), name, natsbus.ClientAuth{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeConn(c) })
		return c
	}
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: 2, End: total, Total: total}, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	conn := dial("stage")
	marked := make(chan struct{}, 1)
	stopMark, err := conn.Subscribe("courier.test.mark", func([]byte) { marked <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopMark)
	s, err := NewServer(conn, st, ServerConfig{Instance: "s2", Model: "m", HeartbeatInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)

	first := dial("first")
	answers := make(chan Message, 4)
	stopReply, err := first.Subscribe(ReplySubject("m", "first"), func(d []byte) {
		var r Message
		if err := Decode(d, &r); err != nil {
			t.Errorf("answer: %v", err)
		}
		answers <- r
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopReply)
	for _, c := range []*natsbus.Conn{first, conn} { // both subscriptions are in place
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := c.Flush(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The second step starts with the first's answer unwritten or not.
	steps, left := 0, make(chan int, 1)
	s.stepMu.Lock()
	s.stepRuns = func() {
		switch steps++; steps {
		case 1:
			select {
			case <-marked:
			case <-time.After(10 * time.Second):
				t.Error("the marker never reached the stage's connection")
			}
		case 2:
			left <- conn.Buffered()
		}
	}
	s.stepMu.Unlock()

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one, two := fuzzStep(1, st.Dim()), fuzzStep(1, st.Dim())
	two.Step, two.Opens, two.Pos = 2, false, []int32{1}
	for _, m := range []*Message{one, two} {
		if err := first.Publish(StepSubject("m", "s2"), AppendEncode(nil, m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Publish("courier.test.mark", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		select {
		case r := <-answers:
			if r.Kind != KindResult || r.Step != uint64(i+1) {
				t.Fatalf("answer %d: kind %d of step %d (%s), want the result of step %d", i, r.Kind, r.Step, r.Err, i+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer to step %d within 10s", i+1)
		}
	}
	if n := <-left; n != 0 {
		t.Errorf("the second step started with %d bytes of the first step's answer still in the connection's write buffer, want 0", n)
	}
}
