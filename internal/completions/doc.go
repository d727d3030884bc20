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
//     show it. Keys are "c.OWNER.ID" (the record: the answer and its
//     metadata), "m.OWNER.ID" (its request messages) and "i.OWNER.ID" (an
//     index entry: id, model, time, metadata), so a list reads one owner's
//     small index entries, then the records of its page only, whatever the
//     size of the answers.
//   - The messages are written first, the index entry last, so a listed
//     completion's record and messages are there; an update rewrites all
//     three, so they expire together (the bucket's age counts from a key's
//     last write). A list skips an entry whose record is gone (deleted or
//     expired meanwhile).
//   - Lists are ordered by the time a completion was first stored, then by
//     id; "after" is a cursor in that order, stable under inserts.
//
// See docs/api.md, "Stored chat completions".
package completions
