// Package refbridgetest builds the refbridge binary for tests and
// benchmarks that run it as a child process (the crash suite, end-to-end
// benchmarks), so that they exercise exactly what is deployed.
package refbridgetest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binary is ./cmd/refbridge built once per test process, on first use.
type Binary struct {
	// Race builds the binary with the race detector.
	Race bool

	once      sync.Once
	dir, path string
	err       error
}

// Path returns the built binary, building it first. A build failure fails
// tb: a suite that skipped when the binary does not build would prove nothing.
func (b *Binary) Path(tb testing.TB) string {
	tb.Helper()
	b.once.Do(func() { b.path, b.err = b.build() })
	if b.err != nil {
		tb.Fatalf("cannot build the refbridge binary: %v", b.err)
	}
	return b.path
}

// Remove deletes the build directory; call it from TestMain after m.Run.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

func (b *Binary) build() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a Go module")
	}
	if b.dir, err = os.MkdirTemp("", "refbridge-bin-"); err != nil {
		return "", err
	}
	path := filepath.Join(b.dir, "refbridge")
	args := []string{"build", "-o", path}
	if b.Race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/refbridge")...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/refbridge: %v\n%s", err, out)
	}
	return path, nil
}
