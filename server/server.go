// Package server is refbridge's inbound HTTP edge: the API UNHCR's DTP posts
// interventions (flow F1) and referral decisions (flow F2d) to, and the
// endpoint Primero's outbound webhooks call. It answers 2xx only after the
// Inbox has durably stored the batch (DESIGN.md invariant 1), acknowledges a
// re-delivery without re-processing it (invariant 2), and tells the sender
// precisely what was wrong with each refused item without holding up the
// others (invariant 7). Neither responses nor logs ever carry a person's data.
//
// Routes:
//
//	POST /api/v1/dtp/interventions  F1 batch (refbridge.InterventionBatch); bearer token
//	POST /api/v1/dtp/decisions      F2d batch (refbridge.DecisionBatch); bearer token
//	POST /api/v1/dtp/inbox          either batch, routed by the body's request_type
//	                                (PrimeroOutgoingReferral | PrimeroIncomingReferralDecision),
//	                                as the reference's OpenFn inbox did; bearer token
//	POST /api/v1/primero/webhook    Primero webhook {"data":{"record_id","record_type":"case",…}}
//	                                → Trigger.CaseChanged(record_id), 202; X-Api-Key or Basic password
//	GET  /healthz                   liveness, 200 {"status":"ok"}; no auth
//	GET  /readyz                    readiness: store reachable, migrations current, circuits
//	                                (200 ready or degraded, 503 not_ready); no auth
//	GET  /metrics                   Prometheus metrics (when Config.Metrics is set); no auth
//	GET  /openapi.yaml              the OpenAPI 3 document of these routes; no auth
//
// A DTP request is checked in this order: bearer token (401), Content-Type
// application/json (415), body size (413), strict JSON (400), then item by
// item. A batch answer is 200 with one result per item:
//
//	{"request_type":…,"received":N,"accepted":a,"duplicate":d,"updated":u,"rejected":r,
//	 "results":[{"index":i,"key":"…","outcome":"accepted|duplicate|updated|rejected",
//	             "exchange_id":"…","folded_into":j,"problems":[{"field","rule","detail"}]}]}
//
// Errors are {"error":{"code":…,"message":…,"problems":[…]}} with the status
// chosen by httpStatus from the refbridge.ErrorCode.
//
// What is handed to the Inbox, per stored item (one Inbound per idempotency
// key in the batch; the payloads have the shapes engine.InterventionInbound
// and engine.DecisionInbound build):
//   - F1: Key = progres_interventionnumber; Payload = a JSON array of the
//     distinct DTP rows of that intervention (DTP sends one row per language
//     and specific-need join; the engine folds them with
//     mapping.FoldInterventions so that no language is lost), first row first.
//   - F2d: Key = progres_orgreferralid; Payload = the one decision object.
//   - ContentHash = hex SHA-256 of the JSON array of the distinct rows,
//     each encoded canonically (compact, the domain type's field order, raw
//     JSON with sorted keys), sorted bytewise: key order, spacing and row
//     order in the request do not make a re-delivery look like an update.
//   - State = rejected with Problems (paths relative to the item) when the
//     item was refused; the engine then sends DTP the failure callback. The
//     payload of a refused row that did not decode is its raw JSON (keys
//     sorted), which may not decode into the domain type.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"refbridge"
)

// Inbox stores inbound messages durably. Receive returns only after the
// items are committed, with one Intake per item in the same order; the
// store implements it.
type Inbox interface {
	Receive(ctx context.Context, items []refbridge.Inbound) ([]refbridge.Intake, error)
}

// Validator checks inbound DTP items against the country profile. It must be
// pure (no I/O) and safe for concurrent use.
type Validator interface {
	// Interventions folds rows that differ only by a language/specific-need
	// join (DTP sends one row per join) and returns, per resulting
	// intervention, its problems (nil = valid). Problem fields are relative
	// to the intervention.
	Interventions(batch []refbridge.Intervention) ([]refbridge.Intervention, [][]refbridge.Problem)
	// Decision returns the problems of one referral decision (nil = valid).
	Decision(d refbridge.ReferralDecision) []refbridge.Problem
}

// Trigger starts processing of one Primero case now (the engine implements
// it); it should only enqueue, so the webhook can answer quickly.
type Trigger interface {
	CaseChanged(ctx context.Context, recordID string) error
}

// Config configures a Server.
type Config struct {
	// Tokens are the bearer tokens DTP may present; several are valid at once
	// so they can be rotated. Blank entries are ignored; surrounding white
	// space is trimmed (tokens often come from files). At least one is required.
	Tokens []string
	// WebhookKeys are the api keys Primero's webhook may present, in the
	// X-Api-Key header or as the HTTP Basic password. Required with Trigger.
	WebhookKeys []string
	// MaxBodyBytes bounds a request body; larger bodies get 413. Default 4 MiB.
	MaxBodyBytes int64
	// Inbox stores DTP batches durably; required.
	Inbox Inbox
	// Validator checks DTP items; required.
	Validator Validator
	// Trigger receives Primero webhooks; nil disables the webhook route (404).
	Trigger Trigger
	// Logger receives one line per request (IDs, codes, counts, durations,
	// never a body). Default: discard.
	Logger *slog.Logger
	// Now is the clock used for request durations. Default time.Now.
	Now func() time.Time
	// Health is what /readyz checks of the store; nil checks nothing.
	Health Health
	// Circuits reports the peers' circuits for /readyz; nil reports none.
	Circuits Circuits
	// Metrics serves GET /metrics; nil leaves the route off (404).
	Metrics http.Handler
}

// DefaultMaxBodyBytes is the body limit when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 4 << 20

// Routes, exported so the wiring and the tests name them exactly as registered.
const (
	RouteInterventions  = "/api/v1/dtp/interventions"
	RouteDecisions      = "/api/v1/dtp/decisions"
	RouteInbox          = "/api/v1/dtp/inbox"
	RoutePrimeroWebhook = "/api/v1/primero/webhook"
	RouteHealth         = "/healthz"
	RouteReady          = "/readyz"
	RouteMetrics        = "/metrics"
	RouteOpenAPI        = "/openapi.yaml"
)

// Server is the inbound HTTP API. It is safe for concurrent use.
type Server struct {
	inbox       Inbox
	validator   Validator
	trigger     Trigger
	tokens      atomic.Pointer[secretSet]
	webhookKeys atomic.Pointer[secretSet]
	maxBody     int64
	log         *slog.Logger
	now         func() time.Time
	f1          *batchFlow[refbridge.Intervention]
	f2d         *batchFlow[refbridge.ReferralDecision]
	handler     http.Handler
	health      Health
	circuits    Circuits
	metrics     http.Handler
	// registered lists "METHOD /path" of every route, for the OpenAPI
	// conformance test.
	registered []string
}

// New returns a Server for cfg, or an error naming the first missing piece.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Inbox == nil:
		return nil, errors.New("server: Config.Inbox is required")
	case cfg.Validator == nil:
		return nil, errors.New("server: Config.Validator is required")
	case cfg.MaxBodyBytes < 0:
		return nil, errors.New("server: Config.MaxBodyBytes must not be negative")
	}
	tokens := newSecretSet(cfg.Tokens)
	if tokens.empty() {
		return nil, errors.New("server: Config.Tokens needs at least one non-blank bearer token")
	}
	keys := newSecretSet(cfg.WebhookKeys)
	if cfg.Trigger != nil && keys.empty() {
		// An unauthenticated webhook would let anyone make the engine poll Primero.
		return nil, errors.New("server: Config.WebhookKeys needs at least one key when Trigger is set")
	}
	s := &Server{
		inbox:     cfg.Inbox,
		validator: cfg.Validator,
		trigger:   cfg.Trigger,
		maxBody:   cfg.MaxBodyBytes,
		log:       cfg.Logger,
		now:       cfg.Now,
	}
	s.tokens.Store(tokens)
	s.webhookKeys.Store(keys)
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.f1 = interventionFlow(s.validator)
	s.f2d = decisionFlow(s.validator)
	s.health, s.circuits, s.metrics = cfg.Health, cfg.Circuits, cfg.Metrics
	s.handler = s.routes()
	return s, nil
}

// Handler returns the http.Handler serving every route.
func (s *Server) Handler() http.Handler { return s.handler }

// SetTokens replaces the bearer tokens DTP may use, without a restart:
// rotate by adding the new token, then retiring the old one. Requests in
// flight finish with the set they were checked against.
func (s *Server) SetTokens(tokens []string) {
	s.tokens.Store(newSecretSet(tokens))
}

// SetWebhookKeys replaces the keys Primero's webhook may present, as
// SetTokens does for DTP's tokens.
func (s *Server) SetWebhookKeys(keys []string) {
	s.webhookKeys.Store(newSecretSet(keys))
}

// HTTPServer returns an http.Server for addr serving s with timeouts that
// keep a slow or stalled client from holding a connection for ever.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// routes registers every route. Each known path also gets a method-less
// pattern so that a wrong method is a JSON 405, and "/" is a JSON 404.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h handlerFunc) {
		mux.Handle(method+" "+path, s.endpoint(h))
		mux.Handle(path, s.endpoint(methodNotAllowed(method)))
		s.registered = append(s.registered, method+" "+path)
	}
	route(http.MethodPost, RouteInterventions, s.requireBearer(s.requireJSON(s.handleInterventions)))
	route(http.MethodPost, RouteDecisions, s.requireBearer(s.requireJSON(s.handleDecisions)))
	route(http.MethodPost, RouteInbox, s.requireBearer(s.requireJSON(s.handleInbox)))
	if s.trigger != nil {
		route(http.MethodPost, RoutePrimeroWebhook, s.requireWebhookKey(s.requireJSON(s.handleWebhook)))
	}
	route(http.MethodGet, RouteHealth, s.handleHealth)
	route(http.MethodGet, RouteReady, s.handleReady)
	route(http.MethodGet, RouteOpenAPI, handleOpenAPI)
	if s.metrics != nil {
		route(http.MethodGet, RouteMetrics, s.handleMetrics)
	}
	mux.Handle("/", s.endpoint(notFound))
	return s.common(mux)
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request, _ *reqState) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
