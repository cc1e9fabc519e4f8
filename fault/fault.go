// Package fault injects seeded, deterministic faults into the simulators'
// HTTP handlers: error statuses (with Retry-After), added latency, hangs past a
// client's timeout and dropped connections. Both peer simulators use it so a
// test can tear refbridge apart under the same fault mix against either peer.
package fault

import (
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Rule describes the faults injected on one endpoint.
type Rule struct {
	// ErrorRate is the share of requests answered with one of Statuses instead
	// of reaching the real handler.
	ErrorRate float64
	// Statuses are chosen uniformly; default {503}.
	Statuses []int
	// RetryAfter is sent (whole seconds, at least 1) on injected 429 and 503.
	RetryAfter time.Duration
	// Latency is added before every request on the endpoint.
	Latency time.Duration
	// HangRate is the share of requests that hang until the client goes away
	// or HangFor passes, and then get no response.
	HangRate float64
	// HangFor bounds a hang; default 2 minutes.
	HangFor time.Duration
	// DropRate is the share of requests whose connection is closed without a response.
	DropRate float64
}

// Render writes an injected error status in the peer's own error envelope.
type Render func(w http.ResponseWriter, r *http.Request, status int)

// Injector holds the rules per endpoint and the seeded random source.
type Injector struct {
	render Render

	mu       sync.Mutex
	rng      *rand.Rand
	rules    map[string]Rule
	injected map[string]int
}

// New returns an injector without rules. The same seed and the same order of
// requests yield the same faults.
func New(seed int64, render Render) *Injector {
	if render == nil {
		render = func(w http.ResponseWriter, _ *http.Request, status int) {
			http.Error(w, http.StatusText(status), status)
		}
	}
	return &Injector{
		render:   render,
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		rules:    map[string]Rule{},
		injected: map[string]int{},
	}
}

// Set installs r for endpoint, the ServeMux pattern its handler was
// registered with, or "*" for every endpoint that has no rule of its own.
func (in *Injector) Set(endpoint string, r Rule) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules[endpoint] = r
}

// Clear removes every rule; counts are kept.
func (in *Injector) Clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	clear(in.rules)
}

// Injected returns how many faults were injected on endpoint ("*" = all).
func (in *Injector) Injected(endpoint string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if endpoint == "*" {
		n := 0
		for _, c := range in.injected {
			n += c
		}
		return n
	}
	return in.injected[endpoint]
}

type action int

const (
	pass action = iota
	fail
	hang
	drop
)

// decide draws the fate of one request under the lock, so the sequence of
// draws, and thus of faults, depends only on the seed and request order.
func (in *Injector) decide(endpoint string) (Rule, action, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	r, ok := in.rules[endpoint]
	if !ok {
		if r, ok = in.rules["*"]; !ok {
			return Rule{}, pass, 0
		}
	}
	p := in.rng.Float64()
	act, status := pass, 0
	switch {
	case p < r.DropRate:
		act = drop
	case p < r.DropRate+r.HangRate:
		act = hang
	case p < r.DropRate+r.HangRate+r.ErrorRate:
		act = fail
		status = http.StatusServiceUnavailable
		if len(r.Statuses) > 0 {
			status = r.Statuses[in.rng.IntN(len(r.Statuses))]
		}
	}
	if act != pass {
		in.injected[endpoint]++
	}
	return r, act, status
}

// Wrap returns h with the faults configured for endpoint applied.
func (in *Injector) Wrap(endpoint string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rule, act, status := in.decide(endpoint)
		if rule.Latency > 0 && !sleep(r, rule.Latency) {
			return
		}
		switch act {
		case fail:
			if rule.RetryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
				secs := int(rule.RetryAfter.Round(time.Second) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			}
			in.render(w, r, status)
		case hang:
			// net/http notices a departed client only once the request body
			// is consumed; read it so the hang ends with the client.
			io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
			d := rule.HangFor
			if d <= 0 {
				d = 2 * time.Minute
			}
			sleep(r, d)
			dropConn(w)
		case drop:
			dropConn(w)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// sleep waits d or until the client goes away; it reports whether d passed.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// dropConn closes the connection without writing a response. Where the
// connection cannot be hijacked (HTTP/2) the handler panics with
// http.ErrAbortHandler, which the server turns into a stream reset.
func dropConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
