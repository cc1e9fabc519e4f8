// Package engine runs refbridge's four flows: it takes each exchange the
// store holds through its states — map, check, deliver, confirm — against
// Primero and DTP, polls Primero for new referrals and decisions, and decides
// what a failure means: retry later, hold for a person, refuse with reasons,
// or dead-letter. It holds no state of its own beyond short caches; every
// decision is recorded in the store before or after the peer confirms it.
package engine

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"refbridge"
	"refbridge/egress"
	"refbridge/primero"
	"refbridge/profile"
	"refbridge/store"
)

// Store is the durable state the engine needs.
type Store interface {
	Receive(ctx context.Context, items []refbridge.Inbound) ([]refbridge.Intake, error)
	Get(ctx context.Context, id string) (refbridge.Exchange, error)
	GetByKey(ctx context.Context, flow refbridge.Flow, key string) (refbridge.Exchange, error)
	Transition(ctx context.Context, id string, c store.Change) (refbridge.Exchange, error)
	Cursor(ctx context.Context, name string) (string, error)
	SetCursor(ctx context.Context, name, value string) error
	Requeue(ctx context.Context, f store.Filter) (int, error)
	Purge(ctx context.Context) (int, error)
}

// Primero is the part of the Primero client the flows use. Every body it
// writes is an egress.Message: it passed the ISP filter (DESIGN invariant 4).
type Primero interface {
	Cases(ctx context.Context, q primero.CaseQuery) iter.Seq2[refbridge.Case, error]
	GetCase(ctx context.Context, id string) (refbridge.Case, error)
	CreateCase(ctx context.Context, id string, c egress.Message[refbridge.Case]) (string, error)
	PatchCase(ctx context.Context, id string, patch egress.Message[refbridge.Case]) (refbridge.Case, error)
	ListReferrals(ctx context.Context, caseID string) ([]refbridge.Referral, error)
	UpdateReferral(ctx context.Context, caseID, referralID string, decision egress.Message[refbridge.Referral]) (refbridge.Referral, error)
	ListUsers(ctx context.Context, q primero.UserQuery) ([]refbridge.User, error)
	MarkSynced(ctx context.Context, caseID string, s egress.Message[refbridge.SyncStatus]) error
}

// DTP is the part of the DTP client the flows use; like Primero, it takes
// only bodies that passed the ISP filter.
type DTP interface {
	SendReferral(ctx context.Context, r egress.Message[refbridge.DTPReferral]) error
	SendInterventionStatus(ctx context.Context, s egress.Message[refbridge.InterventionStatus]) error
}

// Config sets up an Engine.
type Config struct {
	Profile *profile.Profile
	Store   Store
	Primero Primero
	DTP     DTP
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Retry spaces the attempts of one exchange; MaxAttempts is the budget
	// after which it is dead-lettered. Default refbridge.DefaultRetryPolicy
	// with MaxAttempts 10 and MaxDelay 10 minutes.
	Retry refbridge.RetryPolicy
	// PollInterval is how often Primero is polled; default 1 minute.
	PollInterval time.Duration
	// PollOverlap is how far before the cursor each poll starts again, so a
	// case saved while the previous poll ran is not skipped; default 10 minutes.
	PollOverlap time.Duration
	// UserCacheTTL bounds how long a Primero user record is reused; default 5 minutes.
	UserCacheTTL time.Duration
	// BreakerTimeout is how long a peer's open circuit waits before a trial
	// call; default 30 seconds.
	BreakerTimeout time.Duration
	// Metrics is told about state changes, retries and dead letters; nil
	// records nothing.
	Metrics Metrics
}

// Metrics receives what the engine did, as codes and durations only (never
// an id or a personal value); package metrics implements it. Calls come
// from the queue's workers concurrently and must not block.
type Metrics interface {
	// Transitioned is called after an exchange moved from one state to
	// another; age is the time since it was first received.
	Transitioned(flow refbridge.Flow, from, to refbridge.ExchangeState, age time.Duration)
	// Retried is called when a failed attempt will be tried again later.
	Retried(flow refbridge.Flow, code refbridge.ErrorCode)
	// DeadLettered is called when an exchange is dead-lettered, with the
	// code of its last failure.
	DeadLettered(flow refbridge.Flow, code refbridge.ErrorCode)
}

// noMetrics is the Metrics of an engine configured without any.
type noMetrics struct{}

func (noMetrics) Transitioned(refbridge.Flow, refbridge.ExchangeState, refbridge.ExchangeState, time.Duration) {
}
func (noMetrics) Retried(refbridge.Flow, refbridge.ErrorCode)      {}
func (noMetrics) DeadLettered(refbridge.Flow, refbridge.ErrorCode) {}

// Engine moves exchanges through their flows.
type Engine struct {
	cfg     Config
	p       *profile.Profile
	store   Store
	primero Primero
	dtp     DTP
	now     func() time.Time
	log     *slog.Logger

	primeroCircuit *gobreaker.CircuitBreaker[any]
	dtpCircuit     *gobreaker.CircuitBreaker[any]

	users userCache
	// lastClock is Primero's clock as this process's last poll saw it.
	lastClock lastPollClock

	mu      sync.Mutex
	trigger func(ctx context.Context, recordIDs []string) error
	scans   scanQueue
}

// New checks cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.Profile == nil:
		return nil, errors.New("engine: a profile is required")
	case cfg.Store == nil:
		return nil, errors.New("engine: a store is required")
	case cfg.Primero == nil || cfg.DTP == nil:
		return nil, errors.New("engine: both peer clients are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retry.MaxAttempts <= 0 {
		cfg.Retry = refbridge.RetryPolicy{MaxAttempts: 10, BaseDelay: time.Second, MaxDelay: 10 * time.Minute}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Minute
	}
	if cfg.PollOverlap <= 0 {
		cfg.PollOverlap = 10 * time.Minute
	}
	if cfg.UserCacheTTL <= 0 {
		cfg.UserCacheTTL = 5 * time.Minute
	}
	if cfg.BreakerTimeout <= 0 {
		cfg.BreakerTimeout = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	e := &Engine{
		cfg: cfg, p: cfg.Profile, store: cfg.Store, primero: cfg.Primero, dtp: cfg.DTP,
		now: cfg.Now, log: cfg.Logger,
		users: userCache{ttl: cfg.UserCacheTTL, now: cfg.Now, entries: map[string]cachedUser{}},
		scans: scanQueue{turn: make(chan struct{}, 1)},
	}
	e.primeroCircuit = newCircuit("primero", cfg.BreakerTimeout, e.log)
	e.dtpCircuit = newCircuit("dtp", cfg.BreakerTimeout, e.log)
	return e, nil
}

// newCircuit opens after 5 consecutive transient failures of a peer, so a
// peer that is down costs one trial call per timeout instead of a retry
// storm; non-transient errors (a refused record) say nothing about its health.
func newCircuit(peer string, timeout time.Duration, log *slog.Logger) *gobreaker.CircuitBreaker[any] {
	return gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        peer,
		MaxRequests: 1,
		Timeout:     timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		IsSuccessful: func(err error) bool {
			return err == nil || !refbridge.IsRetryable(err) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Info("circuit changed", "peer", name, "from", from.String(), "to", to.String())
		},
	})
}

// CircuitStates reports each peer's circuit ("closed", "open", "half-open").
func (e *Engine) CircuitStates() map[string]string {
	return map[string]string{"primero": e.primeroCircuit.State().String(), "dtp": e.dtpCircuit.State().String()}
}

// call runs fn through the peer's circuit breaker.
func call[T any](cb *gobreaker.CircuitBreaker[any], fn func() (T, error)) (T, error) {
	var zero T
	v, err := cb.Execute(func() (any, error) { return fn() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return zero, &refbridge.Error{Code: refbridge.ETransient, Peer: cb.Name(), Message: "circuit open: peer failing, calls paused", Err: errCircuitOpen}
	}
	if err != nil {
		return zero, err
	}
	if v == nil {
		return zero, nil
	}
	return v.(T), nil
}

// errCircuitOpen marks calls refused by an open circuit: they are not an
// attempt of the exchange and do not count against its retry budget.
var errCircuitOpen = errors.New("circuit open")

// SetTrigger installs how Primero webhooks schedule case scans (the
// queue's insert of one job per case, in one transaction); until then
// CaseChanged scans in the caller's goroutine.
func (e *Engine) SetTrigger(fn func(ctx context.Context, recordIDs []string) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trigger = fn
}

// CaseChanged is called for a Primero webhook: the case is scanned at once
// instead of at the next poll. It returns once the scan is queued. Webhooks
// that arrive while an earlier insert is being written are queued together
// in the next one (Primero sends one per saved case, so under load this
// turns hundreds of small transactions into a few).
func (e *Engine) CaseChanged(ctx context.Context, recordID string) error {
	e.mu.Lock()
	trigger := e.trigger
	e.mu.Unlock()
	if trigger == nil {
		return e.ScanCase(ctx, recordID)
	}
	req := &scanRequest{recordID: recordID, done: make(chan struct{})}
	e.scans.mu.Lock()
	e.scans.pending = append(e.scans.pending, req)
	e.scans.mu.Unlock()
	select {
	case <-req.done:
		return req.err
	case e.scans.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err() // still pending: the next insert carries it
	}
	defer func() { <-e.scans.turn }()
	for {
		select {
		case <-req.done:
			return req.err
		default:
		}
		e.scans.mu.Lock()
		batch := e.scans.pending
		e.scans.pending = nil
		e.scans.mu.Unlock()
		ids := make([]string, 0, len(batch))
		seen := make(map[string]bool, len(batch))
		for _, r := range batch {
			if !seen[r.recordID] {
				seen[r.recordID] = true
				ids = append(ids, r.recordID)
			}
		}
		err := trigger(context.WithoutCancel(ctx), ids)
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
	}
}

// scanRequest is one webhook waiting for its scan to be queued.
type scanRequest struct {
	recordID string
	done     chan struct{}
	err      error
}

// scanQueue coalesces webhooks into one queue insert (see CaseChanged).
type scanQueue struct {
	mu      sync.Mutex
	pending []*scanRequest
	turn    chan struct{} // held by the caller writing an insert
}
