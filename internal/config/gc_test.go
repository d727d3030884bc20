package config

import "testing"

// TestGCPercent: a process that hosts no engine takes
// EnginelessGCPercent unless GOGC is set; one that serves a model, a
// stage of one, or may load pulled models keeps Go's setting.
func TestGCPercent(t *testing.T) {
	node := func(role string, models int, edit func(*Node)) Node {
		c := Default(role)
		for range models {
			c.Models = append(c.Models, Model{Name: "m", Path: "m.gguf"})
		}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	upstream := func(c *Node) { c.Upstreams = []Upstream{{URL: "http://127.0.0.1:8000/v1"}} }
	for _, tc := range []struct {
		name   string
		c      Node
		envSet bool
		want   int
	}{
		{"gateway", node(RoleGateway, 0, nil), false, EnginelessGCPercent},
		{"gateway, GOGC set", node(RoleGateway, 0, nil), true, 0},
		{"serve without --model", node(RoleServe, 0, nil), false, EnginelessGCPercent},
		{"serve without --model, GOGC set", node(RoleServe, 0, nil), true, 0},
		{"serve --upstream only", node(RoleServe, 0, upstream), false, EnginelessGCPercent},
		{"serve --allow-pull", node(RoleServe, 0, func(c *Node) { c.AllowPull = true }), false, 0},
		{"serve --model", node(RoleServe, 1, nil), false, 0},
		{"serve --model --upstream", node(RoleServe, 1, upstream), false, 0},
		{"serve --model --stages 2", node(RoleServe, 1, func(c *Node) { c.Stages.Count = 2 }), false, 0},
		{"worker --model", node(RoleWorker, 1, nil), false, 0},
		{"worker --model, GOGC set", node(RoleWorker, 1, nil), true, 0},
		{"stage worker", node(RoleWorker, 1, func(c *Node) { c.Stages.Stage = "2/2" }), false, 0},
		{"worker --upstream only", node(RoleWorker, 0, upstream), false, EnginelessGCPercent},
		{"worker --upstream only, GOGC set", node(RoleWorker, 0, upstream), true, 0},
	} {
		if got := tc.c.GCPercent(tc.envSet); got != tc.want {
			t.Errorf("%s: GCPercent = %d, want %d", tc.name, got, tc.want)
		}
	}
}
