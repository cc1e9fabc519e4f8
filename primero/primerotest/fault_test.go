package primerotest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"refbridge/fault"
)

// faultRun sends n list requests to a fresh simulator seeded with seed and
// returns the statuses it got.
func faultRun(t *testing.T, seed int64, n int) ([]int, *Sim) {
	t.Helper()
	s := newSim(t, Options{Seed: seed})
	s.Faults().Set(PatternListCases, fault.Rule{
		ErrorRate: 0.5, Statuses: []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}, RetryAfter: 2 * time.Second,
	})
	var got []int
	for range n {
		r := request(t, s, http.MethodGet, "/api/v2/cases", uBridge, nil)
		got = append(got, r.status)
		if r.status == http.StatusOK {
			continue
		}
		e := r.firstError(t)
		if e["status"] != float64(r.status) || e["resource"] != "/api/v2/cases" || e["message"] != http.StatusText(r.status) {
			t.Errorf("injected %d rendered as %v", r.status, e)
		}
		if r.header.Get("Retry-After") != "2" {
			t.Errorf("injected %d without Retry-After: %v", r.status, r.header)
		}
	}
	return got, s
}

func TestFaultInjectionDeterministic(t *testing.T) {
	t.Parallel()
	const n = 40
	a, s := faultRun(t, 7, n)
	b, _ := faultRun(t, 7, n)
	c, _ := faultRun(t, 8, n)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("different seeds gave the same %d statuses", n)
	}
	failed := 0
	for _, st := range a {
		if st != http.StatusOK {
			failed++
		}
	}
	if failed == 0 || failed == n {
		t.Errorf("%d of %d failed; want a mix", failed, n)
	}
	if got := s.Faults().Injected(PatternListCases); got != failed {
		t.Errorf("Injected = %d, want %d", got, failed)
	}
	if got := s.Requests(PatternListCases); got != n {
		t.Errorf("Requests = %d, want %d", got, n)
	}
	// Other endpoints are untouched.
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/users", uBridge, nil), http.StatusOK)
}

func TestFaultWildcard(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{Seed: 1})
	s.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{http.StatusBadGateway}})
	for _, p := range []string{"/api/v2/users", "/api/v2/cases", "/api/v2/cases/" + s.SeedCase(nil)} {
		r := request(t, s, http.MethodGet, p, uBridge, nil)
		mustStatus(t, r, http.StatusBadGateway)
		if e := r.firstError(t); e["status"] != float64(502) {
			t.Errorf("%s: %v", p, e)
		}
	}
	s.Faults().Clear()
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/users", uBridge, nil), http.StatusOK)
	if got := fmt.Sprint(s.Requests(PatternGetCase), s.Requests(PatternListUsers)); got != "1 2" {
		t.Errorf("Requests = %s", got)
	}
}
