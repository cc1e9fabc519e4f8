package server

import (
	"context"
	"net/http"
	"time"

	"refbridge"
)

// Health is what readiness asks of the store (store.DB implements it).
type Health interface {
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// MigrationsCurrent reports whether the schema is at the version this
	// binary expects.
	MigrationsCurrent(ctx context.Context) (bool, error)
}

// Circuits reports each peer's circuit breaker: "closed", "half-open" or
// "open" (engine.Engine implements it).
type Circuits interface {
	CircuitStates() map[string]string
}

// readyTimeout bounds the readiness checks: a probe must answer before the
// orchestrator's own timeout, and a store that takes longer is not ready.
const readyTimeout = 2 * time.Second

// Readiness values. Only these codes appear in a /readyz body.
const (
	ReadyReady    = "ready"     // store reachable, schema current, every circuit closed
	ReadyDegraded = "degraded"  // ready, but some peer's circuit is not closed
	ReadyNot      = "not_ready" // the node cannot store what it is sent
)

// readiness is the /readyz body: codes only.
type readiness struct {
	Status string `json:"status"`
	// Store is "ok", "unreachable", "full" (its last write failed for lack
	// of space) or "unchecked" (no Health configured).
	Store string `json:"store"`
	// Migrations is "current", "pending" (schema older or newer than this
	// binary), "unknown" (could not be read) or "unchecked".
	Migrations string `json:"migrations"`
	// Peers maps each peer to its circuit state.
	Peers map[string]string `json:"peers"`
	// Reason is why the node is not ready (only then): store_full,
	// store_unreachable, migrations_pending or migrations_unknown.
	Reason string `json:"reason,omitempty"`
}

// handleReady answers whether this node should be sent traffic: 200 when
// the store answers and its schema is current, 503 otherwise. An open
// circuit makes it "degraded" but still 200: intake does not need the
// peers (what arrives is stored and delivered when the peer is back), and
// taking every replica out of the load balancer because Primero is down
// would turn a peer outage into refusing DTP's deliveries too.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request, st *reqState) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	body := readiness{Status: ReadyReady, Store: "unchecked", Migrations: "unchecked", Peers: map[string]string{}}
	if s.health != nil {
		body.Store, body.Migrations = "ok", "current"
		if err := s.health.Ping(ctx); err != nil {
			body.Store, body.Migrations = "unreachable", "unknown"
			st.code = refbridge.ErrorCodeOf(err)
			if st.code == refbridge.EStoreFull {
				// The database answers; it cannot take a write.
				body.Store, body.Migrations = "full", "unchecked"
			}
		} else if ok, err := s.health.MigrationsCurrent(ctx); err != nil {
			body.Migrations = "unknown"
			st.code = refbridge.ErrorCodeOf(err)
		} else if !ok {
			body.Migrations = "pending"
		}
		if body.Store != "ok" || body.Migrations != "current" {
			body.Status = ReadyNot
			body.Reason = "store_" + body.Store
			if body.Store == "ok" {
				body.Reason = "migrations_" + body.Migrations
			}
		}
	}
	if s.circuits != nil {
		for peer, state := range s.circuits.CircuitStates() {
			body.Peers[peer] = state
			if state != "closed" && body.Status == ReadyReady {
				body.Status = ReadyDegraded
			}
		}
	}
	if body.Status == ReadyNot {
		w.Header().Set("Retry-After", retryAfterSeconds(defaultRetryAfter))
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleMetrics serves the Prometheus handler under the common middleware
// (request id, log line, security headers).
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ *reqState) {
	s.metrics.ServeHTTP(w, r)
}
