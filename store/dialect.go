package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"modernc.org/sqlite"
)

//go:embed migrations/*/*.sql
var migrationFiles embed.FS

// dialect is everything that differs between database engines. The SQL
// itself lives in queries.go, written once with '?' placeholders; each
// engine (SQLite here, PostgreSQL in postgres.go) is a dialect value and a
// migrations directory, and nothing else in the package differs.
type dialect struct {
	name string
	// migrations holds this engine's schema files, NNNN_name.sql.
	migrations fs.FS
	// migrationsTable creates the table recording applied schema versions.
	migrationsTable string
	// tableExists returns a query counting tables of that name (0 or 1).
	tableExists func(table string) string
	// bind rewrites '?' placeholders into the engine's style ($1… on PostgreSQL).
	bind func(query string) string
	// lockRow is appended to the read that precedes an update of the same
	// row: "" on SQLite (a transaction already holds the only write lock),
	// " FOR UPDATE" on PostgreSQL.
	lockRow string
	// bytewise follows a text column to compare it byte by byte: "" on
	// SQLite (BINARY is its default), ` COLLATE "C"` on PostgreSQL.
	bytewise string
	// lockAudit runs first in every write transaction of the store, before
	// it reads or writes any exchange: it takes the audit chain's lock (the
	// anchor row). Every writer then takes its locks in one order — chain
	// first, exchange rows after — so writers of several replicas queue
	// instead of deadlocking, intake of one key by two replicas is
	// serialised, and the chain stays one total order. "" on SQLite, whose
	// BEGIN IMMEDIATE already takes the database's only write lock.
	lockAudit string
	// lockSchema runs in a transaction held open while Migrate runs, so that
	// replicas starting together migrate one after the other (River's
	// migrator takes no lock of its own). "" on SQLite, whose lock file
	// already keeps a second process out.
	lockSchema string
	// open opens the pool and whatever guards the engine needs; release is
	// called after the pool is closed.
	open func(ctx context.Context, cfg Config) (pool *sql.DB, release func() error, err error)
	// riverDriver wraps the pool for River.
	riverDriver func(pool *sql.DB) riverdriver.Driver[*sql.Tx]
	// completeJob marks a running job completed inside tx (river.JobCompleteTx
	// is generic over the driver type).
	completeJob func(ctx context.Context, tx *sql.Tx, job *river.Job[ProcessExchange]) error
	// recoverJobs makes River jobs left running by a dead process runnable
	// again at Open. Only SQLite has one: its lock file proves no other
	// process is working the queue. On a shared database it must stay ""
	// (River's rescuer does this after RescueAfter).
	recoverJobs []string
}

// dialectFor picks the engine a Config.Path names: a postgres:// or
// postgresql:// URL is PostgreSQL, anything else an SQLite file.
func dialectFor(path string) *dialect {
	lower := strings.ToLower(path)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		return postgresDialect()
	}
	return sqliteDialect()
}

// sqliteDialect is the embedded, single-process store.
func sqliteDialect() *dialect {
	sub, err := fs.Sub(migrationFiles, "migrations/sqlite")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return &dialect{
		name:       "sqlite",
		migrations: sub,
		migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT`,
		tableExists: func(t string) string {
			return "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '" + t + "'"
		},
		bind:        func(q string) string { return q },
		lockRow:     "",
		lockAudit:   "",
		lockSchema:  "",
		open:        openSQLite,
		riverDriver: func(pool *sql.DB) riverdriver.Driver[*sql.Tx] { return riversqlite.New(pool) },
		completeJob: func(ctx context.Context, tx *sql.Tx, job *river.Job[ProcessExchange]) error {
			_, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job)
			return err
		},
		recoverJobs: []string{
			// Jobs a killed process was working: run them again now, not
			// after RescueAfter. Their attempt count already includes the lost run.
			`UPDATE river_job SET state = 'available' WHERE state = 'running'`,
			// A dead process's leadership would otherwise delay periodic jobs
			// until it expires.
			`DELETE FROM river_leader`,
		},
	}
}

// openSQLite opens the SQLite file with one connection. River's SQLite
// driver needs that (concurrent connections fail with SQLITE_BUSY even with
// a busy timeout), and SQLite serializes writers anyway; a pool of one also
// makes every transaction exclusive, so reads before writes cannot race.
func openSQLite(ctx context.Context, cfg Config) (*sql.DB, func() error, error) {
	if cfg.Path == "" || cfg.Path == ":memory:" || strings.ContainsAny(cfg.Path, "?#") {
		return nil, nil, fmt.Errorf("store: Path must name a file (no '?' or '#'), got %q", cfg.Path)
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
	}
	unlock, err := lockFile(cfg.Path + ".lock")
	if err != nil {
		return nil, nil, err
	}
	// Create the file owner-only before SQLite does (it would use the umask);
	// SQLite gives -wal and -shm the database file's mode.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("store: %w", err), unlock())
	}
	f.Close()

	q := url.Values{}
	for _, p := range []string{
		"busy_timeout(10000)",
		"journal_mode(WAL)",
		"synchronous(FULL)", // fsync the WAL at every commit: a 2xx means on disk
		"foreign_keys(ON)",
		"secure_delete(ON)", // purged payloads are overwritten, not left in free pages
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	connector, err := sqlite.NewConnector(cfg.Path + "?" + q.Encode())
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("store: %w", err), unlock())
	}
	pool := sql.OpenDB(cachingConnector{connector})
	pool.SetMaxOpenConns(1)
	pool.SetMaxIdleConns(1)
	pool.SetConnMaxLifetime(0)
	pool.SetConnMaxIdleTime(0)

	var mode string
	if err := pool.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("store: open %s: %w", filepath.Base(cfg.Path), err), pool.Close(), unlock())
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, nil, errors.Join(fmt.Errorf("store: %s: journal mode is %q, want wal", filepath.Base(cfg.Path), mode), pool.Close(), unlock())
	}
	return pool, unlock, nil
}
