package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/riverqueue/river"

	"refbridge"
	"refbridge/console"
	"refbridge/dtp"
	"refbridge/engine"
	"refbridge/metrics"
	"refbridge/primero"
	"refbridge/profile"
	"refbridge/server"
	"refbridge/store"
)

// appConfig is everything the running bridge is built from; serve fills it
// from the configuration file, demo from its simulators.
type appConfig struct {
	Profile   *profile.Profile
	StorePath string
	Keys      *store.Keyring
	Retention time.Duration

	Primero primero.Config
	DTP     dtp.Config

	InboundTokens []string
	WebhookKeys   []string
	MaxBodyBytes  int64

	PollInterval, PollOverlap time.Duration
	// JobTimeout bounds one exchange's work; 0 means the queue's default.
	JobTimeout           time.Duration
	MaxAttempts, Workers int
	Logger               *slog.Logger
}

// app is a wired bridge: store, engine and its queue, inbound API.
type app struct {
	log    *slog.Logger
	db     *store.DB
	engine *engine.Engine
	queue  *river.Client[*sql.Tx]
	server *server.Server
	// console is the operator console, mounted at console.Prefix.
	console *console.Console
	// The peer clients, kept to swap their credentials on SIGHUP.
	primero *primero.Client
	dtp     *dtp.Client
}

func newApp(ctx context.Context, c appConfig) (*app, error) {
	db, err := store.Open(ctx, store.Config{Path: c.StorePath, Keys: c.Keys, Retention: c.Retention, Logger: c.Logger})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redactedStore(c.StorePath), err)
	}
	if err := recordProfile(ctx, db, c.Profile); err != nil {
		db.Close()
		return nil, err
	}
	a, err := wire(db, c)
	if err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// profileCursor remembers which profile (by digest) was in force at the
// last start.
const profileCursor = "config/profile_sha256"

// recordProfile audits a change of the profile in force (its mappings and
// ISP allow-lists decide what is shared): the first start with a profile,
// or a start with a profile whose source differs from the last one, adds a
// config_changed event naming the new digest.
func recordProfile(ctx context.Context, db *store.DB, p *profile.Profile) error {
	prev, err := db.Cursor(ctx, profileCursor)
	if err != nil {
		return fmt.Errorf("read the profile in force: %w", err)
	}
	if prev == p.Digest() {
		return nil
	}
	reason := "profile_changed"
	if prev == "" {
		reason = "profile_first_use"
	}
	if err := db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Actor: "refbridge",
		Fields: []string{"profile"}, Outcome: "sha256:" + p.Digest(), Reason: reason}); err != nil {
		return fmt.Errorf("audit the profile in force: %w", err)
	}
	return db.SetCursor(ctx, profileCursor, p.Digest())
}

// redactedStore names the store for messages: a PostgreSQL URL without its
// password.
func redactedStore(path string) string {
	if u, err := url.Parse(path); err == nil && u.Scheme != "" && u.User != nil {
		return u.Redacted()
	}
	return path
}

func wire(db *store.DB, c appConfig) (*app, error) {
	// One registry per app, never the global one: tests run several apps.
	reg := metrics.New(metrics.Config{Logger: c.Logger})
	c.Primero.Observer, c.DTP.Observer = reg, reg
	pc, err := primero.New(c.Primero)
	if err != nil {
		return nil, fmt.Errorf("primero client: %w", err)
	}
	dc, err := dtp.New(c.DTP)
	if err != nil {
		return nil, fmt.Errorf("dtp client: %w", err)
	}
	eng, err := engine.New(engine.Config{
		Profile: c.Profile, Store: db, Primero: pc, DTP: dc, Logger: c.Logger,
		Retry:        refbridge.RetryPolicy{MaxAttempts: c.MaxAttempts, BaseDelay: time.Second, MaxDelay: 10 * time.Minute},
		PollInterval: c.PollInterval, PollOverlap: c.PollOverlap,
		Metrics: reg,
	})
	if err != nil {
		return nil, err
	}
	if err := reg.Watch(metrics.Sources{Exchanges: db, Queue: db, Circuits: eng, Poll: eng}); err != nil {
		return nil, err
	}
	// River's own budget is only a backstop for refbridge failures (the
	// store unreachable); peer failures are counted by the engine, which
	// dead-letters with a reason long before.
	queue, err := db.NewQueue(store.QueueConfig{Workers: eng.Workers(), PeriodicJobs: eng.PeriodicJobs(),
		MaxWorkers: c.Workers, JobTimeout: c.JobTimeout, MaxAttempts: 25, Logger: c.Logger})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	// Not unique: a scan is idempotent, and a webhook for a change made
	// while an earlier scan of the case runs must not be dropped.
	eng.SetTrigger(func(ctx context.Context, recordIDs []string) error {
		jobs := make([]river.InsertManyParams, len(recordIDs))
		for i, id := range recordIDs {
			jobs[i] = river.InsertManyParams{Args: engine.ScanCaseArgs{RecordID: id}}
		}
		_, err := queue.InsertManyFast(ctx, jobs)
		return db.NoteWrite(err) // a full disk answers the webhook 503, not 500
	})
	srv, err := server.New(server.Config{
		Tokens: c.InboundTokens, WebhookKeys: c.WebhookKeys, MaxBodyBytes: c.MaxBodyBytes,
		Inbox: db, Validator: engine.Validator{Profile: c.Profile}, Trigger: triggerOrNil(eng, c.WebhookKeys), Logger: c.Logger,
		Health: db, Circuits: eng, Metrics: reg.Handler(),
	})
	if err != nil {
		return nil, fmt.Errorf("inbound API: %w", err)
	}
	con, err := console.New(console.Config{Store: db, Profile: c.Profile, Circuits: eng.CircuitStates, LastPoll: eng.LastPoll,
		QueueDepth: db.QueueDepth, Logger: c.Logger})
	if err != nil {
		return nil, err
	}
	return &app{log: c.Logger, db: db, engine: eng, queue: queue, server: srv, console: con, primero: pc, dtp: dc}, nil
}

// triggerOrNil leaves the webhook route off when no webhook key is set.
func triggerOrNil(eng *engine.Engine, keys []string) server.Trigger {
	if len(keys) == 0 {
		return nil
	}
	return eng
}

// run serves ln and works the queue until ctx ends, then stops taking
// requests, lets in-flight jobs finish (or, after a grace period, cancels
// them; an interrupted exchange is simply worked again at next start) and
// closes the store.
func (a *app) run(ctx context.Context, ln net.Listener) error {
	if err := a.queue.Start(ctx); err != nil {
		return fmt.Errorf("start queue: %w", err)
	}
	hs := a.server.HTTPServer(ln.Addr().String())
	// The console shares the listener; everything else is the inbound API.
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, a.console.Handler())
	mux.Handle("/", hs.Handler)
	hs.Handler = mux
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hs.Shutdown(grace)
	if err := a.queue.Stop(grace); err != nil {
		a.log.Warn("queue did not stop in time; cancelling in-flight jobs", "code", string(refbridge.ErrorCodeOf(err)))
		hard, cancelHard := context.WithTimeout(context.Background(), 5*time.Second)
		a.queue.StopAndCancel(hard)
		cancelHard()
	}
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}
