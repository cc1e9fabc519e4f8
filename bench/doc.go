// Package bench holds refbridge's performance benchmarks (issue #5):
//
//   - BenchmarkInboxIntake: durable intake of DTP intervention batches
//     through the real inbound HTTP handler into SQLite with fsync at every
//     commit; reports interventions/s and p50/p99 request latency.
//   - BenchmarkEndToEndF1: the real `refbridge serve` binary as a child
//     process against the Primero and DTP simulators (in the benchmark
//     process): interventions posted until every Pending Acknowledgement
//     callback reached DTP; reports referrals/s and the child's peak RSS.
//   - TestCompareOpenFn (issue #10): flow F1 through refbridge and through
//     the reference's OpenFn runtime (bench/openfn, from npm) on the same
//     interventions against the same Primero simulator, for several batch
//     sizes; prints referrals/s, p50/p99 latency, peak RSS and the ratios,
//     and can draw docs/performance-compare.png. It needs node, so it is
//     skipped unless REFBRIDGE_BENCH_OPENFN is set.
//
// The package has no code outside its tests; see docs/performance.md for
// the commands and the numbers measured.
package bench
