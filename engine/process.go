package engine

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"refbridge"
	"refbridge/store"
)

// maxSteps bounds how many state changes one Process call makes: a flow
// has at most four, and a few more when a concurrent update interleaves.
const maxSteps = 12

// next is what a step asks Process to do after it.
type next int

const (
	stop      next = iota // the exchange rests (done, held, waiting for a decision)
	continue_             // the state changed: run the next step now
)

// retryLater is returned by a step to try the exchange again after After
// (a snooze of its job); it is not an error of the job.
type retryLater struct{ After time.Duration }

func (r *retryLater) Error() string { return "retry after " + r.After.String() }

// Process takes one exchange as far as it can go now. It returns nil when
// the exchange rests, a *retryLater when it should be run again later, and
// an error only for failures of refbridge itself (the store), which the
// queue retries.
func (e *Engine) Process(ctx context.Context, id string) error {
	for range maxSteps {
		ex, err := e.store.Get(ctx, id)
		if err != nil {
			return err
		}
		n, err := e.step(ctx, ex)
		switch {
		case err == nil && n == stop:
			return nil
		case err == nil:
			continue
		case isStoreConflict(err):
			continue // another writer moved it (an update arrived): look again
		case isStoreError(err):
			return err // refbridge's own state is unreachable: the queue retries
		}
		var later *retryLater
		if errors.As(err, &later) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.failed(ctx, ex, err)
	}
	// Updates kept arriving while it was worked: let the queue run it again.
	e.log.Warn("exchange still moving after the step limit", "exchange", id, "steps", maxSteps)
	return &retryLater{After: time.Second}
}

// storeConflict wraps the store's optimistic-lock failures so that they are
// told apart from a peer's 409.
type storeConflict struct{ err error }

func (s storeConflict) Error() string { return s.err.Error() }
func (s storeConflict) Unwrap() error { return s.err }

func isStoreConflict(err error) bool {
	var sc storeConflict
	return errors.As(err, &sc)
}

// storeError wraps any other failure to record a change.
type storeError struct{ err error }

func (s storeError) Error() string { return s.err.Error() }
func (s storeError) Unwrap() error { return s.err }

func isStoreError(err error) bool {
	var se storeError
	return errors.As(err, &se)
}

// jobKey carries the queue job working an exchange through its context.
type jobKey struct{}

func withJob(ctx context.Context, job *river.Job[store.ProcessExchange]) context.Context {
	return context.WithValue(ctx, jobKey{}, job)
}

// finish records the change that leaves the exchange resting and, when a
// queue job is working it, completes that job in the same transaction: an
// update committed afterwards then always gets a job of its own.
func (e *Engine) finish(ctx context.Context, ex refbridge.Exchange, c store.Change) error {
	if job, ok := ctx.Value(jobKey{}).(*river.Job[store.ProcessExchange]); ok && job.Args.ExchangeID == ex.ID {
		c.CompleteJob = job
	}
	return e.move(ctx, ex, c)
}

// move records a state change with a precondition on the current state.
func (e *Engine) move(ctx context.Context, ex refbridge.Exchange, c store.Change) error {
	if len(c.From) == 0 {
		c.From = []refbridge.ExchangeState{ex.State}
	}
	// An update that arrived since ex was read changes the hash: this step
	// worked on old content and must not overwrite the new.
	c.IfContentHash = ex.ContentHash
	_, err := e.store.Transition(ctx, ex.ID, c)
	switch {
	case err == nil:
		e.observe(ex, c)
		return nil
	case refbridge.ErrorCodeOf(err) == refbridge.EConflict:
		return storeConflict{err}
	}
	return storeError{err}
}

// observe reports a recorded change to the metrics. Every state change of
// the engine passes through move, so this is the one place that sees them
// all; it is told after the commit, so a rolled-back change is not counted.
func (e *Engine) observe(ex refbridge.Exchange, c store.Change) {
	m := e.cfg.Metrics
	switch {
	case c.To == refbridge.StateDead && ex.State != refbridge.StateDead:
		code := c.LastError
		if code == "" {
			code = refbridge.EInternal // refbridge's own fault (unknown flow): no peer failed
		}
		m.DeadLettered(ex.Flow, code)
	case c.Attempted && c.To == ex.State:
		m.Retried(ex.Flow, c.LastError)
	}
	if c.To != ex.State {
		m.Transitioned(ex.Flow, ex.State, c.To, e.now().Sub(ex.CreatedAt))
	}
}

// step runs the one step the exchange's flow and state call for.
func (e *Engine) step(ctx context.Context, ex refbridge.Exchange) (next, error) {
	if ex.State == refbridge.StateHeld || ex.State == refbridge.StateDead || ex.State.Terminal() {
		return stop, nil
	}
	switch ex.Flow {
	case refbridge.FlowIntervention:
		return e.stepIntervention(ctx, ex)
	case refbridge.FlowServiceDecision:
		return e.stepServiceDecision(ctx, ex)
	case refbridge.FlowReferral:
		return e.stepReferral(ctx, ex)
	case refbridge.FlowReferralDecision:
		return e.stepReferralDecision(ctx, ex)
	}
	return stop, e.finish(ctx, ex, store.Change{To: refbridge.StateDead, Reason: "unknown_flow"})
}

// failed decides what a peer failure means for the exchange: a transient
// one is tried again later until the budget is spent, then dead-lettered;
// a permanent one is dead-lettered at once with its code, for the focal
// point. Calls refused by an open circuit do not use up the budget.
func (e *Engine) failed(ctx context.Context, ex refbridge.Exchange, err error) error {
	code := refbridge.ErrorCodeOf(err)
	e.log.Warn("exchange attempt failed", "exchange", ex.ID, "flow", string(ex.Flow), "state", string(ex.State), "code", string(code), "attempt", ex.Attempts+1)
	if errors.Is(err, errCircuitOpen) {
		// Not an attempt, but the exchange must still say why it waits.
		if ex.LastError != refbridge.ETransient {
			if merr := e.move(ctx, ex, store.Change{To: ex.State, Reason: ex.Reason, Problems: ex.Problems, LastError: refbridge.ETransient}); merr != nil {
				return merr
			}
		}
		return &retryLater{After: e.cfg.BreakerTimeout}
	}
	// Bad credentials or missing permissions are fixed by the focal point,
	// after which the exchange should go on by itself: retry them too.
	retryable := refbridge.IsRetryable(err) || code == refbridge.EUnauthorized || code == refbridge.EForbidden
	if !retryable || ex.Attempts+1 >= e.cfg.Retry.MaxAttempts {
		reason := string(code)
		if retryable {
			reason = "retry_budget_spent"
		}
		return e.finish(ctx, ex, store.Change{To: refbridge.StateDead, Reason: reason, Problems: refbridge.ErrorProblems(err),
			Attempted: true, LastError: code})
	}
	if merr := e.move(ctx, ex, store.Change{To: ex.State, Reason: ex.Reason, Problems: ex.Problems,
		Attempted: true, LastError: code}); merr != nil {
		return merr
	}
	wait := e.cfg.Retry.Backoff(ex.Attempts + 1)
	if ra := refbridge.ErrorRetryAfter(err); ra > wait {
		wait = ra
	}
	return &retryLater{After: wait}
}

// decode reads an exchange's payload; a payload that no longer decodes is
// refbridge's own fault, so the exchange is dead-lettered for a person.
func decode[T any](ex refbridge.Exchange) (T, error) {
	var v T
	if ex.Payload == nil {
		return v, refbridge.Errorf(refbridge.EInternal, "exchange %s has no payload in state %s", ex.ID, ex.State)
	}
	if err := json.Unmarshal(ex.Payload, &v); err != nil {
		return v, &refbridge.Error{Code: refbridge.EInternal, Message: "decode payload of exchange " + ex.ID, Err: err}
	}
	return v, nil
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("engine: encode payload: " + err.Error()) // only our own types reach here
	}
	return b
}
