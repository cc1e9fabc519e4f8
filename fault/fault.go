// Package fault injects seeded, deterministic faults into the simulators'
// HTTP handlers: error statuses (with Retry-After), added latency, hangs past a
// client's timeout, dropped connections, and answers lost after the peer acted
// (reset connections, slow bodies). Both peer simulators use it so a test can
// tear refbridge apart under the same fault mix against either peer.
package fault

import (
	"crypto/tls"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
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
	// ResetRate is the share of requests the real handler serves whose
	// answer is then lost to a TCP reset: the peer acted, the client cannot
	// know it (the outcome a retry must not double).
	ResetRate float64
	// SlowBodyRate is the share of requests the real handler serves whose
	// response body is then trickled over a time drawn between SlowBodyFor/4
	// and SlowBodyFor: some finish slowly, some outlast the client's timeout.
	SlowBodyRate float64
	// SlowBodyFor bounds a slow body; default 3 seconds.
	SlowBodyFor time.Duration
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
	// afterEffect counts resets and slow bodies: faults injected after the
	// real handler acted.
	afterEffect int
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

// AfterEffect returns how many faults were injected after the real handler
// had acted (resets and slow bodies), on every endpoint: a client may
// rightly send each of those requests again.
func (in *Injector) AfterEffect() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.afterEffect
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
	reset
	slowBody
)

// fate is what decide drew for one request.
type fate struct {
	rule   Rule
	act    action
	status int
	// slowFor is how long a slow body takes.
	slowFor time.Duration
}

// decide draws the fate of one request under the lock, so the sequence of
// draws, and thus of faults, depends only on the seed and request order.
func (in *Injector) decide(endpoint string) fate {
	in.mu.Lock()
	defer in.mu.Unlock()
	r, ok := in.rules[endpoint]
	if !ok {
		if r, ok = in.rules["*"]; !ok {
			return fate{}
		}
	}
	f := fate{rule: r}
	p := in.rng.Float64()
	switch bound := r.DropRate; {
	case p < bound:
		f.act = drop
	case p < bound+r.HangRate:
		f.act = hang
	case p < bound+r.HangRate+r.ResetRate:
		f.act = reset
	case p < bound+r.HangRate+r.ResetRate+r.SlowBodyRate:
		f.act = slowBody
		d := r.SlowBodyFor
		if d <= 0 {
			d = 3 * time.Second
		}
		f.slowFor = d/4 + time.Duration(in.rng.Int64N(int64(d-d/4)+1))
	case p < bound+r.HangRate+r.ResetRate+r.SlowBodyRate+r.ErrorRate:
		f.act = fail
		f.status = http.StatusServiceUnavailable
		if len(r.Statuses) > 0 {
			f.status = r.Statuses[in.rng.IntN(len(r.Statuses))]
		}
	}
	if f.act != pass {
		in.injected[endpoint]++
	}
	if f.act == reset || f.act == slowBody {
		in.afterEffect++
	}
	return f
}

// Wrap returns h with the faults configured for endpoint applied.
func (in *Injector) Wrap(endpoint string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := in.decide(endpoint)
		if f.rule.Latency > 0 && !sleep(r, f.rule.Latency) {
			return
		}
		switch f.act {
		case fail:
			if f.rule.RetryAfter > 0 && (f.status == http.StatusTooManyRequests || f.status == http.StatusServiceUnavailable) {
				secs := int(f.rule.RetryAfter.Round(time.Second) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			}
			in.render(w, r, f.status)
		case hang:
			// net/http notices a departed client only once the request body
			// is consumed; read it so the hang ends with the client.
			io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
			d := f.rule.HangFor
			if d <= 0 {
				d = 2 * time.Minute
			}
			sleep(r, d)
			dropConn(w)
		case drop:
			dropConn(w)
		case reset:
			h.ServeHTTP(httptest.NewRecorder(), r)
			resetConn(w)
		case slowBody:
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			trickle(w, r, rec, f.slowFor)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// trickle sends a recorded response with its body in chunks spread over d,
// stopping when the client goes away.
func trickle(w http.ResponseWriter, r *http.Request, rec *httptest.ResponseRecorder, d time.Duration) {
	maps.Copy(w.Header(), rec.Header())
	body := rec.Body.Bytes()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	rc := http.NewResponseController(w)
	rc.Flush()
	const chunks = 8
	size := max((len(body)+chunks-1)/chunks, 1)
	for len(body) > 0 {
		if !sleep(r, d/chunks) {
			return
		}
		n := min(size, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		rc.Flush()
		body = body[n:]
	}
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

// resetConn closes the connection with a TCP reset (SO_LINGER 0), as a
// crashed peer or a middlebox would; like dropConn where it cannot hijack.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
