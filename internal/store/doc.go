// Package store keeps GGUF models downloaded from the Hugging Face Hub (or
// any HTTPS URL) under one folder, $COURIER_HOME (default ~/.cache/courier),
// and turns model names into file paths.
//
// Layout: DIR/models/ORG/REPO/TAG/ holds a model's file(s) and its
// manifest.json; a URL pull lands in DIR/models/STEM/latest/. A model exists
// once its manifest is written, which happens last, after every file was
// downloaded and its SHA-256 checked. A download in progress is FILE.partial
// beside it and is resumed with an HTTP Range request by the next pull of the
// same model. A file whose SHA-256 differs from the Hub's is deleted with
// everything else of that pull, so a failed pull leaves nothing behind but an
// interrupted one can continue. A pull holds .pull.lock (flock) in the
// model's folder, so a second pull of the same model fails at once
// (ErrPullRunning) instead of writing the same .partial file.
//
// Names: "ORG/REPO:QUANT", "hf.co/ORG/REPO:QUANT" (the same), "ORG/REPO" (the
// only quantization pulled, else Q4_K_M), and "STEM" for URL pulls. Tags are
// compared case-insensitively. Resolve turns a name or a path into a path;
// a path that exists always wins.
//
// The package reads no environment: Home takes a lookup function, and the
// Hub's endpoint and token are fields of Hub.
package store
