// Package store is refbridge's durable state: an exchange per referral or
// decision per flow with its state machine and idempotency key, the work
// queue (River, in the same database, enqueued in the same transaction as
// the state change), poll cursors, and the encryption and purge of the
// personal data an exchange carries.
//
// Two engines: embedded SQLite for a single process, and PostgreSQL for
// several replicas sharing one database (issue #7). SQL lives in queries.go
// and per-engine differences in one dialect value (dialect.go, postgres.go),
// so both run the same code, tested by the same storetest suite.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"

	"refbridge"
)

// Config sets up a store.
type Config struct {
	// Path says where the store lives and so which engine holds it:
	//   - a file path: SQLite, for one process; the file is created (mode
	//     0600) if missing;
	//   - a postgres:// or postgresql:// URL, e.g.
	//     postgres://refbridge@db.example:5432/refbridge?sslmode=verify-full:
	//     PostgreSQL, shared by any number of refbridge replicas. The database
	//     must exist; Open creates the tables. Leave the password out of the
	//     URL (PGPASSWORD or ~/.pgpass are read): the path is printed in logs.
	Path string
	// Keys encrypt payloads at rest; required.
	Keys *Keyring
	// Retention is how long a terminal exchange keeps its payload. 0 purges
	// it in the same transaction that makes the exchange terminal; with more,
	// Purge (a periodic job) removes it later.
	Retention time.Duration
	// Now is the clock for row timestamps and retention; default time.Now.
	// An injected clock (tests) is handed to River too, for the times it
	// writes into its job and leader tables (see riverClock); without one
	// River leaves those to the database's own clock.
	Now func() time.Time
	// Logger receives ids, counts and codes only; default discards.
	Logger *slog.Logger
}

// DB is an open store. It is safe for concurrent use.
type DB struct {
	sql         *sql.DB
	d           *dialect
	q           queries
	migrations  []migration
	riverDriver riverdriver.Driver[*sql.Tx]
	// inserter enqueues jobs inside the store's transactions; it never works them.
	inserter *river.Client[*sql.Tx]
	// maxAttempts is the River retry budget stamped on each job at insert
	// (River reads it from the inserting client); set by NewQueue.
	maxAttempts atomic.Int64

	keys      *Keyring
	retention time.Duration
	now       func() time.Time
	// clock is River's view of now: Config.Now when one was injected.
	clock     riverClock
	log       *slog.Logger
	path      string
	release   func() error
	turn      chan struct{} // one writer transaction of ours at a time, FIFO
	groupMu   sync.Mutex
	pending   []*transitionReq // Transitions waiting for a group commit
	closeOnce sync.Once
	closeErr  error
	full      fullState // the last write refused for lack of space (full.go)
}

// Open opens (creating if needed) the store at cfg.Path, SQLite or
// PostgreSQL by the form of the path, and brings both schemas up to date.
// Open refuses a store holding payloads under a key the keyring lacks.
//
// On SQLite, Open also makes River jobs a killed process left running
// available again. That recovery is only sound because an SQLite store
// belongs to one process: Open takes an exclusive lock on "<Path>.lock" and
// refuses to open a store another process (or another Open) holds. On
// PostgreSQL other replicas may be working those jobs, so River's rescuer
// retries them after QueueConfig.RescueAfter instead.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Keys == nil {
		return nil, errors.New("store: Config.Keys is required")
	}
	if cfg.Retention < 0 {
		return nil, errors.New("store: Config.Retention cannot be negative")
	}
	clock := riverClock{now: cfg.Now}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := dialectFor(cfg.Path)
	ms, err := loadMigrations(d.migrations)
	if err != nil {
		return nil, err
	}
	pool, release, err := d.open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	db := &DB{
		sql: pool, d: d, q: newQueries(d), migrations: ms, riverDriver: d.riverDriver(pool),
		keys: cfg.Keys, retention: cfg.Retention, now: cfg.Now, clock: clock, log: cfg.Logger,
		path: cfg.Path, release: release, turn: make(chan struct{}, 1),
	}
	if err := db.start(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

func (db *DB) start(ctx context.Context) error {
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	if err := db.recoverJobs(ctx); err != nil {
		return err
	}
	if err := db.checkKeys(ctx); err != nil {
		return err
	}
	inserter, err := river.NewClient(db.riverDriver, &river.Config{Logger: db.quietLogger(), Test: db.clock.config()})
	if err != nil {
		return fmt.Errorf("store: river: %w", err)
	}
	db.inserter = inserter
	return nil
}

// recoverJobs runs the dialect's single-node recovery (see dialect.recoverJobs).
func (db *DB) recoverJobs(ctx context.Context) error {
	if len(db.d.recoverJobs) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		for i, q := range db.d.recoverJobs {
			res, err := tx.ExecContext(ctx, q)
			if err != nil {
				return fmt.Errorf("store: recover jobs: %w", err)
			}
			if n, _ := res.RowsAffected(); i == 0 && n > 0 {
				db.log.Warn("store: jobs of a stopped process made available again", "jobs", n)
			}
		}
		return nil
	})
}

// checkKeys fails when some payload is under a key the keyring lacks: such
// rows could never be processed, and removing a key too early must show.
func (db *DB) checkKeys(ctx context.Context) error {
	rows, err := db.sql.QueryContext(ctx, db.q.keyIDsInUse)
	if err != nil {
		return fmt.Errorf("store: key ids in use: %w", err)
	}
	defer rows.Close()
	var missing []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		if _, ok := db.keys.aeads[id]; !ok {
			missing = append(missing, id)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("store: payloads are encrypted under key id(s) %v that the keyring lacks: add them back (after the current key) and run key rotation before removing them", missing)
	}
	return nil
}

// Close closes the database and releases the process lock; closing twice
// is harmless. Stop any River client from NewQueue first.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closeErr = db.sql.Close()
		if db.release != nil {
			db.closeErr = errors.Join(db.closeErr, db.release())
		}
	})
	return db.closeErr
}

// Ping checks that the database answers (for liveness/readiness). It is
// EStoreFull while the store's last write failed for lack of space (for
// up to fullHold, until a write succeeds): the database answers, but the
// node cannot store what it is sent.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.fullErr(); err != nil {
		return err
	}
	var one int
	if err := db.sql.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Path returns where the store lives (Config.Path: the SQLite file or the
// PostgreSQL URL), e.g. to reopen it.
func (db *DB) Path() string { return db.path }

// Dialect names the engine holding the store: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.d.name }

// SQL returns the underlying pool (one connection on SQLite). It is for
// River's *Tx helpers (river.JobCompleteTx) and tests; refbridge's tables
// are written only through DB's methods, which keep payloads encrypted.
// Never call it inside a callback that already holds a transaction: on
// SQLite the second connection would wait forever. Bind adapts a query's
// placeholders to the engine.
func (db *DB) SQL() *sql.DB { return db.sql }

// Bind rewrites a query written with '?' placeholders into the engine's
// style ($1, $2… on PostgreSQL), for queries run through SQL().
func (db *DB) Bind(query string) string { return db.d.bind(query) }

// inTx runs fn in one write transaction, committed (and fsynced) before
// inTx returns; any error rolls everything back. The transaction first
// takes the audit chain's lock (dialect.lockAudit), whether or not fn
// appends events, so that the store's writers on every replica lock in one
// order and never deadlock.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.writeOutcome(db.runTx(ctx, db.d.lockAudit, fn))
}

// inSchemaTx is inTx for migrations: the audit anchor may not exist yet,
// and Migrate holds the schema lock instead.
func (db *DB) inSchemaTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.writeOutcome(db.runTx(ctx, "", fn))
}

// runTx runs first (unless "") and then fn in one transaction.
func (db *DB) runTx(ctx context.Context, first string, fn func(tx *sql.Tx) error) error {
	// Queue our writers first-come first-served: database/sql hands a freed
	// connection to a random waiter, which under load turns into seconds of
	// tail latency for an unlucky inbox request.
	select {
	case db.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.turn }()
	// The caller's cancellation stops the statements (each runs under ctx)
	// but not the COMMIT: pgx cancels an in-flight COMMIT when the
	// transaction's context ends, and the caller would then hear "failed"
	// about a transaction the server committed. Checked before the commit
	// instead, so an error always means nothing was stored.
	tx, err := db.sql.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if first != "" {
		if _, err := tx.ExecContext(ctx, first); err != nil {
			return errors.Join(withCtxErr(ctx, fmt.Errorf("store: lock: %w", err)), ignoreDone(tx.Rollback()))
		}
	}
	if err := fn(tx); err != nil {
		return errors.Join(withCtxErr(ctx, err), ignoreDone(tx.Rollback()))
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return withCtxErr(ctx, fmt.Errorf("store: commit: %w", err))
	}
	return nil
}

// withCtxErr makes a failure caused by the caller's cancellation say so:
// database/sql reports it as a closed statement or transaction instead.
func withCtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// ignoreDone hides the rollback error database/sql reports when the
// context already ended the transaction.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func (db *DB) nowMicros() int64 { return db.now().UTC().UnixMicro() }

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// aad binds a ciphertext to its row: a payload copied to another exchange
// (or another flow or key) fails to authenticate.
func aad(id string, flow refbridge.Flow, key string) []byte {
	return []byte("refbridge/exchange/v1\x00" + id + "\x00" + string(flow) + "\x00" + key)
}

// errStore wraps a database failure as an internal application error,
// keeping the cause for errors.Is (context cancellation included).
func errStore(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *refbridge.Error
	if errors.As(err, &e) {
		return err
	}
	return &refbridge.Error{Code: refbridge.EInternal, Message: "store: " + op, Err: err}
}
