//go:build !unix

package store

// lockFile is a no-op where flock is unavailable: there, running two
// processes on one SQLite file is the operator's mistake to avoid.
func lockFile(string) (func() error, error) { return func() error { return nil }, nil }
