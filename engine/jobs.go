package engine

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"refbridge"
	"refbridge/store"
)

// PollArgs is the periodic job that polls Primero (run by the elected
// leader only, so replicas never poll twice at once).
type PollArgs struct{}

// Kind implements river.JobArgs.
func (PollArgs) Kind() string { return "poll_primero" }

// ScanCaseArgs scans one Primero case at once, after its webhook.
type ScanCaseArgs struct {
	RecordID string `json:"record_id"`
}

// Kind implements river.JobArgs.
func (ScanCaseArgs) Kind() string { return "scan_case" }

// SweepArgs re-queues exchanges that should be moving but have no job: a
// safety net for a wake-up lost between a job's end and a concurrent update.
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "sweep_exchanges" }

// PurgeArgs deletes the payloads of exchanges that ended longer ago than
// the store's retention (with retention 0 they are deleted as they end).
type PurgeArgs struct{}

// Kind implements river.JobArgs.
func (PurgeArgs) Kind() string { return "purge_payloads" }

// Workers returns the queue workers for the engine's jobs.
func (e *Engine) Workers() *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
		err := e.Process(withJob(ctx, job), job.Args.ExchangeID)
		var later *retryLater
		if errors.As(err, &later) {
			return river.JobSnooze(later.After)
		}
		return err
	}))
	// A failed poll or scan is not retried by the queue: River's backoff
	// (attempts⁴ seconds) would hold back the next scheduled poll, which is
	// the retry, one poll interval later, from the cursor that did not move.
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, job *river.Job[PollArgs]) error {
		n, err := e.Poll(ctx)
		if err != nil {
			e.log.Warn("poll failed; the next poll retries", "items", n, "code", string(refbridge.ErrorCodeOf(err)))
			return nil
		}
		e.log.Info("poll done", "items", n)
		return nil
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, job *river.Job[ScanCaseArgs]) error {
		if err := e.ScanCase(ctx, job.Args.RecordID); err != nil {
			e.log.Warn("case scan failed; the next poll covers it", "case", job.Args.RecordID, "code", string(refbridge.ErrorCodeOf(err)))
		}
		return nil
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, job *river.Job[SweepArgs]) error {
		return e.Sweep(ctx)
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, job *river.Job[PurgeArgs]) error {
		n, err := e.store.Purge(ctx)
		if n > 0 {
			e.log.Info("payloads purged", "exchanges", n)
		}
		return err
	}))
	return w
}

// PeriodicJobs returns the poll, sweep and purge schedules.
func (e *Engine) PeriodicJobs() []*river.PeriodicJob {
	// One poll (or sweep) at a time, but a finished one never blocks the
	// next: River's default unique states include completed.
	unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable,
	}}}
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(e.cfg.PollInterval),
			func() (river.JobArgs, *river.InsertOpts) { return PollArgs{}, unique },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, unique },
			&river.PeriodicJobOpts{RunOnStart: true}),
		// Personal data must not outlive its retention by more than this.
		river.NewPeriodicJob(river.PeriodicInterval(5*time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return PurgeArgs{}, unique },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
}

// clockStepHorizon is the least wait a sweep takes for a job scheduled
// before the clock was set back (see Sweep).
const clockStepHorizon = time.Hour

// jobRescheduler is the part of the store that brings forward jobs
// scheduled in a clock's old reckoning (store.DB.RescheduleFarJobs).
type jobRescheduler interface {
	RescheduleFarJobs(ctx context.Context, horizon time.Duration) (int, error)
}

// Sweep re-queues exchanges left in a moving state without a job: River
// adds no job for an update that lands while the exchange's job is still
// running (unique jobs), so without this such an update would wait forever.
//
// It also brings forward jobs scheduled further ahead than any wait the
// engine asks for (an hour, or twice the longest backoff or circuit
// timeout): those were scheduled before the clock was set back, and would
// wait out the step. So after a step back of S, a retry waits at most
// min(S, that horizon) more than it asked, plus one sweep interval.
func (e *Engine) Sweep(ctx context.Context) error {
	if r, ok := e.store.(jobRescheduler); ok {
		horizon := max(clockStepHorizon, 2*e.cfg.Retry.MaxDelay, 2*e.cfg.BreakerTimeout)
		if _, err := r.RescheduleFarJobs(ctx, horizon); err != nil {
			return err
		}
	}
	for _, f := range []store.Filter{
		{State: refbridge.StateReceived}, {State: refbridge.StateMapped}, {State: refbridge.StateRejected},
		{State: refbridge.StateDelivered, Reason: ReasonSyncPending},
	} {
		if _, err := e.store.Requeue(ctx, f); err != nil {
			return err
		}
	}
	return nil
}
