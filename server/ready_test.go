package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"refbridge"
)

// fakeHealth answers readiness checks as told.
type fakeHealth struct {
	pingErr    error
	current    bool
	currentErr error
}

func (f fakeHealth) Ping(context.Context) error { return f.pingErr }
func (f fakeHealth) MigrationsCurrent(context.Context) (bool, error) {
	return f.current, f.currentErr
}

// fixedCircuits reports fixed circuit states.
type fixedCircuits map[string]string

func (c fixedCircuits) CircuitStates() map[string]string { return c }

func readyAnswer(t testing.TB, r reply) readiness {
	t.Helper()
	var got readiness
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("/readyz body %q: %v", r.body, err)
	}
	return got
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	closed := fixedCircuits{"primero": "closed", "dtp": "closed"}
	transient := refbridge.Errorf(refbridge.ETransient, "store: ping: connection refused to db.internal:5432")
	full := &refbridge.Error{Code: refbridge.EStoreFull, Message: "store: disk full", Err: errors.New("database or disk is full (13)")}
	tests := []struct {
		name     string
		health   Health
		circuits Circuits
		status   int
		want     readiness
	}{
		{"all well", fakeHealth{current: true}, closed, http.StatusOK,
			readiness{Status: ReadyReady, Store: "ok", Migrations: "current", Peers: closed}},
		{"store gone", fakeHealth{pingErr: transient}, closed, http.StatusServiceUnavailable,
			readiness{Status: ReadyNot, Store: "unreachable", Migrations: "unknown", Peers: closed, Reason: "store_unreachable"}},
		{"store full", fakeHealth{pingErr: full}, closed, http.StatusServiceUnavailable,
			readiness{Status: ReadyNot, Store: "full", Migrations: "unchecked", Peers: closed, Reason: "store_full"}},
		{"schema behind", fakeHealth{current: false}, closed, http.StatusServiceUnavailable,
			readiness{Status: ReadyNot, Store: "ok", Migrations: "pending", Peers: closed, Reason: "migrations_pending"}},
		{"schema unreadable", fakeHealth{currentErr: transient}, closed, http.StatusServiceUnavailable,
			readiness{Status: ReadyNot, Store: "ok", Migrations: "unknown", Peers: closed, Reason: "migrations_unknown"}},
		{"a circuit open", fakeHealth{current: true}, fixedCircuits{"primero": "open", "dtp": "closed"}, http.StatusOK,
			readiness{Status: ReadyDegraded, Store: "ok", Migrations: "current", Peers: map[string]string{"primero": "open", "dtp": "closed"}}},
		{"store gone and circuit half-open", fakeHealth{pingErr: transient}, fixedCircuits{"dtp": "half-open"}, http.StatusServiceUnavailable,
			readiness{Status: ReadyNot, Store: "unreachable", Migrations: "unknown", Peers: map[string]string{"dtp": "half-open"}, Reason: "store_unreachable"}},
		{"nothing to check", nil, nil, http.StatusOK,
			readiness{Status: ReadyReady, Store: "unchecked", Migrations: "unchecked", Peers: map[string]string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, newStore(t), func(c *Config) { c.Health, c.Circuits = tc.health, tc.circuits })
			r := h.do(t, http.MethodGet, RouteReady, nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			got := readyAnswer(t, r)
			if got.Status != tc.want.Status || got.Store != tc.want.Store || got.Migrations != tc.want.Migrations || got.Reason != tc.want.Reason ||
				len(got.Peers) != len(tc.want.Peers) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for p, s := range tc.want.Peers {
				if got.Peers[p] != s {
					t.Errorf("peer %s = %q, want %q", p, got.Peers[p], s)
				}
			}
			if tc.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Error("a 503 without Retry-After")
			}
			// The cause's text (a host name here) never reaches the body.
			for _, cause := range []string{"db.internal", "connection refused", "disk is full"} {
				if bytes.Contains(r.body, []byte(cause)) {
					t.Errorf("body %s quotes the cause (%q)", r.body, cause)
				}
			}
		})
	}
}

// TestReadyzWhenTheStoreIsClosed checks readiness against the real store:
// ready while it is open, not ready once it is closed (what a lost
// database connection looks like to the process).
func TestReadyzWhenTheStoreIsClosed(t *testing.T) {
	t.Parallel()
	db := newStore(t)
	h := newHarness(t, db, func(c *Config) { c.Health = db.DB })
	if r := h.do(t, http.MethodGet, RouteReady, nil); r.status != http.StatusOK || readyAnswer(t, r).Status != ReadyReady {
		t.Fatalf("open store: %d %s, want 200 ready", r.status, r.body)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r := h.do(t, http.MethodGet, RouteReady, nil)
	got := readyAnswer(t, r)
	if r.status != http.StatusServiceUnavailable || got.Status != ReadyNot || got.Store != "unreachable" {
		t.Fatalf("closed store: %d %+v, want 503 not_ready with the store unreachable", r.status, got)
	}
	// Liveness is the process, not its dependencies: still 200.
	if r := h.do(t, http.MethodGet, RouteHealth, nil); r.status != http.StatusOK {
		t.Fatalf("/healthz with the store closed: %d, want 200", r.status)
	}
}
