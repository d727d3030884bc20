// Package toolcall reads a tool-mode answer as the model writes it and
// splits it into content and OpenAI tool-call pieces (Stream), for every
// model family's call syntax. It is driven by the text alone, so whoever
// emits an answer's chunks — a worker, or a pipeline's last stage — sends
// the same pieces for the same text. It allocates nothing per token.
package toolcall
