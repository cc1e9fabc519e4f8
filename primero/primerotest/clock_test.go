package primerotest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// steppedClock is a clock a test sets.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppedClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *steppedClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// TestClockStepsAreFaithful: the Date of every answer is the simulator's
// clock, and a write after the clock was set back is stamped earlier than
// the writes before it, as Rails would; a frozen clock still moves stamps on.
func TestClockStepsAreFaithful(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 5, 8, 10, 0, 0, 0, time.UTC)
	clock := &steppedClock{t: start}
	s := New(Options{Now: clock.Now})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v2/nowhere", nil))
	if got, err := http.ParseTime(rec.Header().Get("Date")); err != nil || !got.Equal(start) {
		t.Fatalf("Date %q (%v), want the simulator's clock %v", rec.Header().Get("Date"), err, start)
	}
	a := s.SeedCase(map[string]any{"owned_by": "u"})
	b := s.SeedCase(map[string]any{"owned_by": "u"}) // frozen clock: 1 ms later
	stampA, stampB := s.Case(a)["last_updated_at"], s.Case(b)["last_updated_at"]
	if stampA == stampB {
		t.Fatalf("two writes under a frozen clock share the stamp %v", stampA)
	}
	clock.Set(start.Add(-2 * time.Hour))
	c := s.SeedCase(map[string]any{"owned_by": "u"})
	if got, want := s.Case(c)["last_updated_at"], formatTime(start.Add(-2*time.Hour)); got != want {
		t.Fatalf("write after the clock was set back stamped %v, want %v", got, want)
	}
}
