// Package metrics defines Courier's Prometheus metrics (client_golang): the
// gateway's request counts and latency histograms, generation timings and
// token counts per model, a collector that reads worker capacity and
// queue depth from the fleet at scrape time, and ones that read the
// gateway's count of stalled workers and its prefix affinity placements.
//
// All names start with "courier_". Label values are bounded: routes come
// from a fixed set, models and workers from live heartbeats. Every method is
// safe for concurrent use and never blocks on I/O.
package metrics
