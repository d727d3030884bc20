// Package completions keeps stored chat completions: the request messages
// and the answer of a chat completion sent with OpenAI's "store": true (or
// every interactive one, with the gateway's --store-all), for OpenAI's
// stored-completions API (list, retrieve, messages, update, delete).
//
// It knows neither NATS nor HTTP: records live in a jobs.KV (package
// natsbus keeps them in the JetStream key-value bucket
// courier_chat_completions, whose max age is --store-ttl), and package api
// renders them.
//
// Promises:
//
//   - Every record carries its owner (the hash of an API key); another
//     owner's lookup, update or delete is ErrNotFound and its lists never
//     show it. Keys are "c.OWNER.ID" (the record) and "m.OWNER.ID" (its
//     request messages), so a list reads one owner's records only and
//     never their messages.
//   - The messages are written before the record, so a listed completion's
//     messages are there; an update rewrites both, so they expire together
//     (the bucket's age counts from the last write).
//   - Lists are ordered by the time a completion was first stored, then by
//     id; "after" is a cursor in that order, stable under inserts.
//
// See docs/api.md, "Stored chat completions".
package completions
