//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock that lives as long as the
// process: a second process (or a second Open in this one) is refused, which
// is what makes resetting "running" jobs at Open safe. The kernel drops the
// lock when the process dies, even by SIGKILL.
func lockFile(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: %s is in use by another refbridge process (SQLite serves one process; stop it first)", path)
		}
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	return f.Close, nil // closing the descriptor releases the lock
}
