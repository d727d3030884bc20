package stage

import (
	"strings"

	"courier/internal/bus"
)

// Bus is what stages need of the message bus: binary messages on subjects
// (natsbus.Conn implements it).
type Bus interface {
	// Publish sends data on subject; data may be reused once it returns.
	Publish(subject string, data []byte) error
	// Subscribe calls handle with each message on subject, one at a time in
	// arrival order; handle may keep data. stop ends the subscription.
	Subscribe(subject string, handle func(data []byte)) (stop func(), err error)
	// MaxPayload is the largest message the bus carries, in bytes.
	MaxPayload() int64
}

// unwritten is what a Bus may also do: report the bytes its connection
// holds not yet written (natsbus.Conn does). A stage server with one P
// yields until that is nothing after a step (Server.yieldOneP).
type unwritten interface {
	Buffered() int
}

// Subjects of the stage protocol (docs/protocol.md, "Stage messages").
// Every one starts with the model's token, so that one grant,
// bus.StageSubjects(model) = courier.stage.<model>.>, confines a worker to the
// pipelines of its models: it can neither read nor forge another model's
// hidden rows, results or announcements.
//
//	courier.stage.<model>.hb.<instance>    stage server → first stages: Announce (JSON)
//	courier.stage.<model>.ping             first stage → stage servers: "announce now"
//	courier.stage.<model>.step.<instance>  previous stage → stage server: a step (binary)
//	courier.stage.<model>.out.<instance>   last (or failing) stage → first stage: result or error (binary)

// prefix is the start of every stage subject of model.
func prefix(model string) string { return strings.TrimSuffix(bus.StageSubjects(model), ">") }

// AnnounceSubject is where stage instance of model announces itself.
func AnnounceSubject(model, instance string) string {
	return prefix(model) + "hb." + bus.Token(instance)
}

// AnnounceSubjects matches every AnnounceSubject of model.
func AnnounceSubjects(model string) string { return prefix(model) + "hb.*" }

// PingSubject asks model's stage servers to announce themselves now.
func PingSubject(model string) string { return prefix(model) + "ping" }

// StepSubject is where stage instance of model takes steps.
func StepSubject(model, instance string) string { return prefix(model) + "step." + bus.Token(instance) }

// ReplySubject is where first stage instance of model takes results.
func ReplySubject(model, instance string) string { return prefix(model) + "out." + bus.Token(instance) }

// ofModel reports whether subject is one of model's stage subjects.
func ofModel(model, subject string) bool { return strings.HasPrefix(subject, prefix(model)) }

// Announce is a stage server's heartbeat: who it is and which layers of
// which model it holds.
type Announce struct {
	V        int    `json:"v"`
	Instance string `json:"instance"`
	Model    string `json:"model"`
	// First, End and Total: the server holds blocks [First, End) of Total.
	First int `json:"first"`
	End   int `json:"end"`
	Total int `json:"total"`
	// Epoch is the newest pipeline epoch the server has served (0: none);
	// a first stage assembling a pipeline takes a larger one.
	Epoch uint64 `json:"epoch,omitempty"`
	// Stopping: the server is going away; do not route through it.
	Stopping bool `json:"stopping,omitempty"`
	// Pipelines counts the first stages whose steps the server ran within
	// the last three heartbeat intervals: a first stage assembling a route
	// prefers the least shared server.
	Pipelines int `json:"pipelines,omitempty"`
	// Emitted counts the chunks the server published as a pipeline's last
	// stage (engine.Request.Out) since it started.
	Emitted uint64 `json:"emitted,omitempty"`
}
