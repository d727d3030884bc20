// Package grammar constrains generation: it compiles JSON Schema,
// json_object, regular expressions and fixed choices into a context-free
// grammar over bytes, and a Machine walks that grammar against a
// vocabulary's token strings to say, at each step, which tokens keep the
// output valid. It knows nothing of models, HTTP or the bus; the engine
// applies its masks to the logits.
//
// # Grammar
//
// A Grammar is a list of rules, each a list of alternatives, each a
// sequence of elements: a byte set (one input byte) or a reference to a
// rule. It is llama.cpp's grammar (src/llama-grammar.cpp) over bytes rather
// than code points, so multi-byte UTF-8 characters, SentencePiece
// byte-fallback tokens and tokens that end inside a character are all the
// same thing: bytes. Repetition becomes right recursion, whose recursive
// reference is always the last element of its alternative, so the stacks
// below stay flat.
//
// # Matching
//
// A matcher state is the set of parse stacks still alive (an Earley-like
// set, as in llama.cpp): each stack is a position on a byte set with the
// positions to return to below it. Stacks are hash-consed into shared
// nodes and whole states are interned, so a state is a small integer and
// the transition on a byte is memoised per state: after warm-up, advancing
// is an array lookup.
//
// # Masks
//
// A Vocab holds the token strings in a byte trie. The mask of a state is
// found by one depth-first walk of the trie, following the memoised
// transitions, pruning at the first byte no stack accepts; it lists the
// allowed ids (or, when most are allowed, the banned ones) and is cached
// per state (XGrammar's observation: the states of a schema repeat, so most
// steps hit the cache). End-of-generation tokens are allowed exactly when
// the state accepts. A Machine (grammar × vocabulary) is shared by every
// request with the same constraint and is safe for concurrent use; a
// Matcher is one request's position in it. The state is a function of the
// accepted tokens, so replaying them (resume) restores it exactly.
package grammar
