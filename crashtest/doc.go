// Package crashtest holds refbridge's crash suite: tests that build the real
// binary, run `refbridge serve` as a child process against the Primero and
// DTP simulators (which run inside the test process with seeded faults),
// kill it with SIGKILL at random moments while traffic flows through all
// four flows, and then check in the simulators' state and in the store that
// every referral, callback and decision took effect exactly once
// (DESIGN.md invariants 1, 2, 6 and 7; issue #5's acceptance).
//
// The package has no code outside its tests. Run it with
//
//	go test -race -count=1 ./crashtest/               # reduced size, ≤ 2 minutes
//	go test -count=1 -timeout 60m ./crashtest/ -crash.full -v   # 5,000 referrals
//
// Flags: -crash.full (full size), -crash.seed N (the seed of kills, faults
// and traffic; the run logs it), -crash.race (build the child with -race too).
//
// TestDiskFull puts the SQLite store on a small tmpfs and fills it while
// traffic flows: it needs root and mount, and skips without them unless
// REFBRIDGE_TEST_TMPFS=1 (CI), which makes their absence a failure.
package crashtest
