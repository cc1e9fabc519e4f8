// Package bench holds refbridge's performance benchmarks (issue #5):
//
//   - BenchmarkInboxIntake: durable intake of DTP intervention batches
//     through the real inbound HTTP handler into SQLite with fsync at every
//     commit; reports interventions/s and p50/p99 request latency.
//   - BenchmarkEndToEndF1: the real `refbridge serve` binary as a child
//     process against the Primero and DTP simulators (in the benchmark
//     process): interventions posted until every Pending Acknowledgement
//     callback reached DTP; reports referrals/s and the child's peak RSS.
//
// The package has no code outside its tests; see docs/performance.md for
// the commands and the numbers measured.
package bench
