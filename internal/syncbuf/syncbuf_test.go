package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestConcurrentWritesAreKept(t *testing.T) {
	t.Parallel()
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 800 || len(b.Bytes()) != 1600 {
		t.Fatalf("kept %d writes, %d bytes; want 800 and 1600", n, len(b.Bytes()))
	}
	b.Reset()
	if b.String() != "" {
		t.Fatalf("after Reset: %q", b.String())
	}
}
