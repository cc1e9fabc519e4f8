package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ProcessExchange is the one job kind: take exchange ExchangeID as far as it
// can go. The job carries only the id; the work reads the exchange.
type ProcessExchange struct {
	ExchangeID string `json:"exchange_id"`
}

// Kind implements river.JobArgs.
func (ProcessExchange) Kind() string { return "process_exchange" }

// InsertOpts makes the job unique per exchange among unfinished jobs: a
// second guard, after the exchange's state, against working one exchange
// twice at once. River requires available, pending, running and scheduled
// in the set; retryable is added so a job waiting to retry is not doubled.
func (ProcessExchange) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		},
	}}
}

// insertOpts are the per-insert options of a ProcessExchange job.
func (db *DB) insertOpts(runAt time.Time) *river.InsertOpts {
	return &river.InsertOpts{MaxAttempts: int(db.maxAttempts.Load()), ScheduledAt: runAt}
}

// QueueConfig sets up the River client that works the queue.
type QueueConfig struct {
	// Workers must register a worker for ProcessExchange (and any periodic
	// job's kind); nil makes an insert-only client (inspection, tests).
	Workers      *river.Workers
	PeriodicJobs []*river.PeriodicJob
	// MaxWorkers is how many jobs run at once; default 8.
	MaxWorkers int
	// JobTimeout cancels a job's context after this long; default 60s.
	JobTimeout time.Duration
	// RescueAfter is when River's leader treats a running job as stuck and
	// retries it; default 2×JobTimeout. On PostgreSQL this is how the jobs
	// of a replica that died come back (after a crash on SQLite, Open
	// already did).
	RescueAfter time.Duration
	// MaxAttempts is River's retry budget per job before it is discarded;
	// it is stamped on jobs this store inserts from now on. 0 = River's 25.
	MaxAttempts int
	// RetryPolicy spaces River's retries; nil = River's default.
	RetryPolicy river.ClientRetryPolicy
	Logger      *slog.Logger
}

// NewQueue returns a River client on the store's database. The caller
// starts and stops it; stop it before Close.
func (db *DB) NewQueue(cfg QueueConfig) (*river.Client[*sql.Tx], error) {
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 8
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 60 * time.Second
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = 2 * cfg.JobTimeout
	}
	if cfg.RescueAfter < cfg.JobTimeout {
		return nil, fmt.Errorf("store: queue: RescueAfter (%s) must not be shorter than JobTimeout (%s)", cfg.RescueAfter, cfg.JobTimeout)
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("store: queue: MaxAttempts cannot be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = db.log
	}
	rc := &river.Config{
		// River fetches at most once per cooldown, so its default (100 ms)
		// caps a queue at MaxWorkers jobs per 100 ms — the end-to-end limit
		// we measured. Both engines poll for new jobs, a cheap indexed
		// query: SQLite has no LISTEN/NOTIFY, and on PostgreSQL River's
		// database/sql driver runs without a pgx listener.
		FetchCooldown:        5 * time.Millisecond,
		FetchPollInterval:    50 * time.Millisecond,
		JobTimeout:           cfg.JobTimeout,
		Logger:               cfg.Logger,
		MaxAttempts:          cfg.MaxAttempts,
		PeriodicJobs:         cfg.PeriodicJobs,
		RescueStuckJobsAfter: cfg.RescueAfter,
		RetryPolicy:          cfg.RetryPolicy,
		// The store's clock, when one was injected (see riverClock).
		Test: db.clock.config(),
	}
	if cfg.Workers != nil {
		rc.Workers = cfg.Workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}}
	}
	client, err := river.NewClient(db.riverDriver, rc)
	if err != nil {
		return nil, fmt.Errorf("store: queue: %w", err)
	}
	if cfg.MaxAttempts > 0 {
		db.maxAttempts.Store(int64(cfg.MaxAttempts))
	}
	return client, nil
}

// riverClock is the store's clock as River's time generator, so that the
// jobs a store with an injected clock enqueues, and River's own scheduling
// of them, live on that clock too: created_at, scheduled_at (inserts,
// snoozes, retries), attempted_at and finalized_at, the scheduler's and the
// fetch's "due by now", periodic jobs and the leader's term.
//
// River does not use it everywhere: its rescuer of stuck jobs and its
// cleaners compare the stored times with time.Now, and the test harness
// shows what that means when the two clocks differ (engine/clockjump_test.go).
//
// Without an injected clock River is given none: it then asks the database
// for now() (NowOrNil is nil), as in production.
type riverClock struct{ now func() time.Time }

// Now implements rivertype.TimeGenerator.
func (c riverClock) Now() time.Time {
	if c.now == nil {
		return time.Now()
	}
	return c.now()
}

// NowOrNil implements rivertype.TimeGenerator: nil unless a clock was injected.
func (c riverClock) NowOrNil() *time.Time {
	if c.now == nil {
		return nil
	}
	t := c.now()
	return &t
}

// config is River's test configuration carrying the clock, if any.
func (c riverClock) config() river.TestConfig {
	if c.now == nil {
		return river.TestConfig{}
	}
	return river.TestConfig{Time: c}
}

var _ rivertype.TimeGenerator = riverClock{}

// RescheduleFarJobs makes due now the ProcessExchange jobs waiting to run
// more than horizon after now, and returns how many. No job the engine
// schedules waits that long, so such a job was scheduled before the clock
// was set back (an NTP step): its time is in the old reckoning, and it would
// otherwise wait out the whole step — hours, for a referral. Running it
// early costs one attempt; the exchange's state decides what it does.
// (River compares scheduled_at with the database's clock, or the store's
// injected one; this compares on the same clock.)
func (db *DB) RescheduleFarJobs(ctx context.Context, horizon time.Duration) (int, error) {
	const batch = 100
	n := 0
	// Latest first: each round brings forward the far ones it lists, so the
	// next lists the rest; bounded in case a job keeps being rescheduled.
	for range 1000 {
		limit := db.clock.Now().Add(horizon)
		params := river.NewJobListParams().Kinds(ProcessExchange{}.Kind()).
			States(rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable).
			OrderBy(river.JobListOrderByScheduledAt, river.SortOrderDesc).First(batch)
		res, err := db.inserter.JobList(ctx, params)
		if err != nil {
			return n, errStore("list far jobs", err)
		}
		far := 0
		for _, j := range res.Jobs {
			if !j.ScheduledAt.After(limit) {
				break
			}
			far++
			// A job that started meanwhile is left alone (River does not
			// touch running jobs); one that finished meanwhile only runs
			// once more against a resting exchange.
			if _, err := db.inserter.JobRetry(ctx, j.ID); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
				return n, errStore("reschedule job", err)
			}
			n++
		}
		if far < batch {
			break
		}
	}
	if n > 0 {
		db.log.Warn("store: jobs scheduled before the clock was set back made due now", "jobs", n, "horizon", horizon.String())
	}
	return n, nil
}
