// Package metrics exposes refbridge's operation in the Prometheus format,
// with the official client (github.com/prometheus/client_golang) on a
// registry of its own: no global registry, nothing registered at init.
//
// Two kinds of metric:
//   - events, counted as they happen: delivery latency (engine.Metrics),
//     retries and dead letters (engine.Metrics), peer request durations
//     (peerhttp.Observer);
//   - state, read at scrape time from Sources (exchanges per flow and state,
//     queue depth, poll lag) behind a short cache, so frequent scrapes or
//     several Prometheus servers cost the store one query per TTL, and
//     circuit states from memory.
//
// Labels carry codes only: flow, state, code, peer, status class. Every
// label value is checked against the known codes and anything else is
// reported as "other", so no id or personal value can become a label even
// through a bug upstream.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"refbridge"
	"refbridge/peerhttp"
)

// Metric names, exported so that the dashboard test and the operators'
// alerts name them exactly as registered.
const (
	NameExchanges          = "refbridge_exchanges"
	NameDeliverySeconds    = "refbridge_delivery_seconds"
	NameRetries            = "refbridge_retries_total"
	NameDeadLetters        = "refbridge_dead_letters_total"
	NamePeerRequestSeconds = "refbridge_peer_request_seconds"
	NameQueueJobs          = "refbridge_queue_jobs"
	NameCircuitState       = "refbridge_circuit_state"
	NamePollLag            = "refbridge_poll_lag_seconds"
	NamePollLastSuccess    = "refbridge_poll_last_success_timestamp_seconds"
	NameSourceUp           = "refbridge_metrics_source_up"
)

// Other is the label value for anything that is not a known code.
const Other = "other"

// ExchangeCounter counts exchanges per flow and state (the store).
type ExchangeCounter interface {
	Counts(ctx context.Context, since time.Time) (map[refbridge.Flow]map[refbridge.ExchangeState]int, error)
}

// QueueCounter counts queue jobs per state (the store).
type QueueCounter interface {
	QueueDepth(ctx context.Context) (map[string]int, error)
}

// CircuitReporter reports each peer's circuit: "closed", "half-open" or
// "open" (the engine).
type CircuitReporter interface {
	CircuitStates() map[string]string
}

// PollClock says when a poll of Primero last succeeded (the engine).
type PollClock interface {
	LastPoll(ctx context.Context) (time.Time, error)
}

// Sources are what the scrape-time metrics are read from; a nil source
// leaves its metrics out.
type Sources struct {
	Exchanges ExchangeCounter
	Queue     QueueCounter
	Circuits  CircuitReporter
	Poll      PollClock
}

// Config sets up a Registry.
type Config struct {
	// CacheTTL is how long values read from Sources are reused; default 5s.
	CacheTTL time.Duration
	// SourceTimeout bounds reading the Sources at a scrape; default 2s.
	SourceTimeout time.Duration
	// Now is the clock for the cache and the poll lag; default time.Now.
	Now func() time.Time
	// Logger receives a line when a source fails (its code only).
	Logger *slog.Logger
}

// Registry holds refbridge's metrics. It implements engine.Metrics and
// peerhttp.Observer and is safe for concurrent use.
type Registry struct {
	cfg      Config
	reg      *prometheus.Registry
	delivery *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	dead     *prometheus.CounterVec
	peer     *prometheus.HistogramVec
	watchMu  sync.Mutex
	watching bool
}

// New returns a Registry with the event metrics, Go runtime and process
// metrics registered; Watch adds the scrape-time ones.
func New(cfg Config) *Registry {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	if cfg.SourceTimeout <= 0 {
		cfg.SourceTimeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		cfg: cfg,
		reg: prometheus.NewRegistry(),
		// From the first receipt to the peer's confirmation: seconds when all
		// is well, hours when a peer is down and retries back off.
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameDeliverySeconds,
			Help:    "Time from an exchange's receipt to reaching a state (delivered or done), per flow.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"flow", "state"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameRetries,
			Help: "Failed attempts of an exchange that will be tried again, by flow and error code.",
		}, []string{"flow", "code"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameDeadLetters,
			Help: "Exchanges dead-lettered for a person to retry or discard, by flow and error code.",
		}, []string{"flow", "code"}),
		// One attempt is bounded by the client timeout (30s by default).
		peer: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NamePeerRequestSeconds,
			Help:    "Duration of each HTTP attempt to a peer, by peer and status class (error: no HTTP answer).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"peer", "status_class"}),
	}
	r.reg.MustRegister(r.delivery, r.retries, r.dead, r.peer,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist from the start make rate() and absent() alerts work
	// before the first event.
	for _, f := range refbridge.Flows() {
		for _, s := range []refbridge.ExchangeState{refbridge.StateDelivered, refbridge.StateDone} {
			r.delivery.WithLabelValues(string(f), string(s))
		}
	}
	return r
}

// Watch registers the scrape-time metrics read from src. It may be called
// once: the engine that is a source is built after the Registry it reports to.
func (r *Registry) Watch(src Sources) error {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watching {
		return refbridge.Errorf(refbridge.EInvalid, "metrics: Watch was already called")
	}
	if err := r.reg.Register(newStateCollector(r.cfg, src)); err != nil {
		return &refbridge.Error{Code: refbridge.EInternal, Message: "metrics: register the state collector", Err: err}
	}
	r.watching = true
	return nil
}

// Handler serves the registry in the Prometheus exposition formats.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(r.cfg.Logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       r.cfg.SourceTimeout + 3*time.Second,
	})
}

// Gatherer gives tests and embedders the registry's families.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Transitioned implements engine.Metrics: an exchange that reaches
// delivered or done is observed with its age.
func (r *Registry) Transitioned(flow refbridge.Flow, _, to refbridge.ExchangeState, age time.Duration) {
	if to != refbridge.StateDelivered && to != refbridge.StateDone {
		return
	}
	r.delivery.WithLabelValues(flowLabel(flow), string(to)).Observe(max(age, 0).Seconds())
}

// Retried implements engine.Metrics.
func (r *Registry) Retried(flow refbridge.Flow, code refbridge.ErrorCode) {
	r.retries.WithLabelValues(flowLabel(flow), codeLabel(code)).Inc()
}

// DeadLettered implements engine.Metrics.
func (r *Registry) DeadLettered(flow refbridge.Flow, code refbridge.ErrorCode) {
	r.dead.WithLabelValues(flowLabel(flow), codeLabel(code)).Inc()
}

// ObservePeerRequest implements peerhttp.Observer.
func (r *Registry) ObservePeerRequest(peer, statusClass string, d time.Duration) {
	r.peer.WithLabelValues(peerLabel(peer), classLabel(statusClass)).Observe(d.Seconds())
}

// Label vocabularies: the only values a label may take besides Other.

// Peers are the peers refbridge talks to.
func Peers() []string { return []string{"primero", "dtp"} }

// StatusClasses are the status classes of peer requests.
func StatusClasses() []string {
	return []string{peerhttp.Class2xx, peerhttp.Class3xx, peerhttp.Class4xx, peerhttp.Class5xx, peerhttp.ClassError}
}

// States are the exchange states.
func States() []refbridge.ExchangeState {
	return []refbridge.ExchangeState{refbridge.StateReceived, refbridge.StateMapped, refbridge.StateDelivered, refbridge.StateDone,
		refbridge.StateHeld, refbridge.StateRejected, refbridge.StateFailed, refbridge.StateDead}
}

// Codes are the application error codes.
func Codes() []refbridge.ErrorCode {
	return []refbridge.ErrorCode{refbridge.ENotFound, refbridge.EUnauthorized, refbridge.EForbidden, refbridge.EConflict,
		refbridge.ERateLimited, refbridge.EInvalid, refbridge.ETransient, refbridge.EStoreFull, refbridge.EInternal}
}

// CircuitStates are the states a peer's circuit can be in.
func CircuitStates() []string { return []string{"closed", "half-open", "open"} }

// JobStates are the states of a work queue job (River's).
func JobStates() []string {
	return []string{"available", "scheduled", "retryable", "pending", "running", "completed", "cancelled", "discarded"}
}

func queueStateLabel(s string) string {
	if slices.Contains(JobStates(), s) {
		return s
	}
	return Other
}

func flowLabel(f refbridge.Flow) string {
	if slices.Contains(refbridge.Flows(), f) {
		return string(f)
	}
	return Other
}

func stateLabel(s refbridge.ExchangeState) string {
	if slices.Contains(States(), s) {
		return string(s)
	}
	return Other
}

func codeLabel(c refbridge.ErrorCode) string {
	if slices.Contains(Codes(), c) {
		return string(c)
	}
	return Other
}

func peerLabel(p string) string {
	if slices.Contains(Peers(), p) {
		return p
	}
	return Other
}

func classLabel(c string) string {
	if slices.Contains(StatusClasses(), c) {
		return c
	}
	return Other
}
