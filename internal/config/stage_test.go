package config

import (
	"strings"
	"testing"
)

// TestStagesValidate checks the stage settings each bad combination is
// refused for, by name.
func TestStagesValidate(t *testing.T) {
	worker := func(f func(*Node)) Node {
		c := Default(RoleWorker)
		c.NATSURL = "nats://127.0.0.1:4222"
		c.Models = []Model{{Name: "m", Path: "m.gguf"}}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		c    Node
		want string // "" accepted
	}{
		{worker(func(c *Node) { c.Stages.Stage = "2/3" }), ""},
		{worker(func(c *Node) { c.Stages.Layers = "4-7"; c.Stages.DType = "f16" }), ""},
		{worker(func(c *Node) { c.Stages.Stage = "0/3" }), "--stage"},
		{worker(func(c *Node) { c.Stages.Stage = "4/3" }), "--stage"},
		{worker(func(c *Node) { c.Stages.Stage = "x" }), "--stage"},
		{worker(func(c *Node) { c.Stages.Layers = "7-4" }), "--layers"},
		{worker(func(c *Node) { c.Stages.WriteThrough = true }), "--stage-write-through"},
		{worker(func(c *Node) { c.Stages.Stage = "2/3"; c.Stages.WriteThrough = true }), ""},
		{worker(func(c *Node) { c.Stages.Stage = "1/2"; c.Stages.Layers = "0-3" }), "not both"},
		{worker(func(c *Node) { c.Stages.Stage = "1/2"; c.Models = append(c.Models, Model{Name: "n", Path: "n"}) }), "exactly one --model"},
		{worker(func(c *Node) { c.Stages.DType = "bf16" }), "--stage-dtype"},
		{worker(func(c *Node) { c.Stages.Microbatches = -1 }), "--stage-microbatches"},
		{worker(func(c *Node) { c.Stages.Microbatches = 17 }), "--stage-microbatches"},
	} {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v refused: %v", tc.c.Stages, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error naming %s", tc.c.Stages, err, tc.want)
		}
	}
	serve := Default(RoleServe)
	if err := serve.Validate(); err != nil {
		t.Errorf("serve without a model (gateway and NATS only): %v", err)
	}
	serve.Stages.Count = 2
	if err := serve.Validate(); err == nil || !strings.Contains(err.Error(), "exactly one --model") {
		t.Errorf("serve --stages 2 without a model: %v", err)
	}
	serve.Models = []Model{{Name: "m", Path: "m.gguf"}}
	serve.Stages.Firsts = 2
	if err := serve.Validate(); err != nil {
		t.Errorf("serve --stages 2 --first-stages 2: %v", err)
	}
	serve.Stages.Count = 0
	if err := serve.Validate(); err == nil || !strings.Contains(err.Error(), "--first-stages") {
		t.Errorf("--first-stages without --stages: %v", err)
	}
	// serve --stage I/N: one share beside the gateway and NATS server,
	// which the other stages' workers join.
	serve.Stages.Firsts = 0
	serve.Stages.Stage = "1/2"
	if err := serve.Validate(); err == nil || !strings.Contains(err.Error(), "--nats-listen") {
		t.Errorf("serve --stage 1/2 without --nats-listen: %v", err)
	}
	serve.NATSListen = "127.0.0.1:4222"
	if err := serve.Validate(); err != nil {
		t.Errorf("serve --stage 1/2 --nats-listen: %v", err)
	}
	serve.Stages.Count = 2
	if err := serve.Validate(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("serve --stage 1/2 --stages 2: %v", err)
	}
	serve.Stages.Count, serve.Stages.Stage, serve.Stages.Layers = 0, "", "0-3"
	if err := serve.Validate(); err != nil {
		t.Errorf("serve --layers 0-3 --nats-listen: %v", err)
	}
}

// TestStageProcs: a stage worker given --threads below the machine's
// GOMAXPROCS takes that many Ps, unless GOMAXPROCS is set; nothing else
// changes Go's choice.
func TestStageProcs(t *testing.T) {
	stage := func(role, share string, threads int) Node {
		c := Default(role)
		c.Stages.Stage, c.Threads = share, threads
		return c
	}
	layers := Default(RoleWorker)
	layers.Stages.Layers, layers.Threads = "0-3", 2
	for _, tc := range []struct {
		name   string
		c      Node
		envSet bool
		procs  int
		want   int
	}{
		{"stage worker, one thread of two", stage(RoleWorker, "1/2", 1), false, 2, 1},
		{"--layers worker", layers, false, 4, 2},
		{"GOMAXPROCS set", stage(RoleWorker, "1/2", 1), true, 2, 0},
		{"threads as many as procs", stage(RoleWorker, "2/2", 2), false, 2, 0},
		{"threads beyond procs", stage(RoleWorker, "2/2", 4), false, 2, 0},
		{"threads not given", stage(RoleWorker, "1/2", 0), false, 2, 0},
		{"whole-model worker", stage(RoleWorker, "", 1), false, 2, 0},
		{"serve", stage(RoleServe, "", 1), false, 2, 0},
	} {
		if got := tc.c.StageProcs(tc.envSet, tc.procs); got != tc.want {
			t.Errorf("%s: StageProcs = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestStageGODEBUG: a process running a stage next to other processes
// restarts with SysmonAwake added to GODEBUG, unless GODEBUG names
// schedtrace; nothing else restarts.
func TestStageGODEBUG(t *testing.T) {
	stage := func(role, share, layers string, count int) Node {
		c := Default(role)
		c.Stages.Stage, c.Stages.Layers, c.Stages.Count = share, layers, count
		return c
	}
	for _, tc := range []struct {
		name, godebug string
		c             Node
		want          string // "": no restart
	}{
		{"stage worker", "", stage(RoleWorker, "2/2", "", 0), SysmonAwake},
		{"--layers worker", "", stage(RoleWorker, "", "0-3", 0), SysmonAwake},
		{"served stage", "", stage(RoleServe, "1/2", "", 0), SysmonAwake},
		{"other settings kept", "madvdontneed=1", stage(RoleWorker, "1/2", "", 0), "madvdontneed=1," + SysmonAwake},
		{"schedtrace named", "gctrace=1,schedtrace=0", stage(RoleWorker, "1/2", "", 0), ""},
		{"whole-model worker", "", stage(RoleWorker, "", "", 0), ""},
		{"all stages in one process", "", stage(RoleServe, "", "", 3), ""},
		{"gateway", "", stage(RoleGateway, "", "", 0), ""},
	} {
		got, ok := tc.c.StageGODEBUG(tc.godebug)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s: StageGODEBUG(%q) = %q, %v; want %q", tc.name, tc.godebug, got, ok, tc.want)
		}
	}
}
