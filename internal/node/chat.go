package node

import "courier/internal/bus"

// chatRenderer renders chat requests for the workers. Until package chat
// (Jinja templates) is wired in, workers use the plain fallback.
var chatRenderer func(tmpl string, msgs []bus.ChatMessage, bos, eos string) (string, error)
