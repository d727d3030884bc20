// Package e2e holds the fabric's end-to-end tests and benchmarks: a real
// `courier serve`, a gateway with workers over an external NATS server or a
// three-node cluster, worker processes killed with SIGKILL, all on the real
// engine and the stories260K model, driven with the official OpenAI Go
// client. It has no non-test code.
package e2e
