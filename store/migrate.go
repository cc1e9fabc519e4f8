package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"

	"github.com/riverqueue/river/rivermigrate"
)

// migrationName is NNNN_words.sql; the number is the schema version.
var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads a dialect's schema files and checks that versions
// run 1, 2, 3… with no gap, so a lost file cannot be skipped silently.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("store: migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: m[2], sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migration versions must run 1, 2, 3…; found %04d at position %d", m.version, i+1)
		}
	}
	return ms, nil
}

// Migrate brings both schemas up to date — refbridge's tables, then River's —
// and returns how many migrations it applied (0 when already current). Each
// migration runs in its own transaction together with its version record, so
// a crash leaves the schema at a whole version. On PostgreSQL, replicas
// migrating at once take turns (dialect.lockSchema).
func (db *DB) Migrate(ctx context.Context) (n int, err error) {
	unlock, err := db.lockSchema(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	own, err := db.migrateOwn(ctx)
	if err != nil {
		return own, err
	}
	migrator, err := rivermigrate.New(db.riverDriver, &rivermigrate.Config{Logger: db.quietLogger()})
	if err != nil {
		return own, fmt.Errorf("store: river migrations: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return own, fmt.Errorf("store: river migrations: %w", err)
	}
	if n := own + len(res.Versions); n > 0 {
		db.log.Info("store migrated", "dialect", db.d.name, "store_migrations", own, "river_migrations", len(res.Versions))
	}
	return own + len(res.Versions), nil
}

// lockSchema takes the dialect's schema lock in a transaction of its own,
// held until unlock; the migrations run on other connections meanwhile.
// Being transaction-scoped, the lock cannot outlive a failure: rolling back
// or losing the connection releases it.
func (db *DB) lockSchema(ctx context.Context) (unlock func() error, err error) {
	if db.d.lockSchema == "" {
		return func() error { return nil }, nil
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: schema lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.d.lockSchema); err != nil {
		return nil, errors.Join(fmt.Errorf("store: schema lock: %w", err), ignoreDone(tx.Rollback()))
	}
	return func() error { return ignoreDone(tx.Rollback()) }, nil
}

func (db *DB) migrateOwn(ctx context.Context) (int, error) {
	if _, err := db.sql.ExecContext(ctx, db.d.migrationsTable); err != nil {
		return 0, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	latest, err := db.schemaVersion(ctx)
	if err != nil {
		return 0, err
	}
	if latest > len(db.migrations) {
		return 0, fmt.Errorf("store: database schema is at version %d, newer than this binary knows (%d): run the newer refbridge", latest, len(db.migrations))
	}
	applied := 0
	for _, m := range db.migrations {
		done, err := db.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied++
		}
	}
	return applied, nil
}

// applyMigration runs one migration unless a version record says it ran;
// the check is inside the transaction so two migrators cannot both apply it.
func (db *DB) applyMigration(ctx context.Context, m migration) (bool, error) {
	done := false
	err := db.inSchemaTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q.migrationApplied, m.version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.q.migrationRecord, m.version, m.name, db.nowMicros()); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: migration %04d_%s: %w", m.version, m.name, err)
	}
	return done, nil
}

func (db *DB) schemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := db.sql.QueryRowContext(ctx, db.q.migrationLatest).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// MigrationsCurrent reports whether both schemas are at the versions this
// binary expects (for readiness: a node with a stale schema must not work).
func (db *DB) MigrationsCurrent(ctx context.Context) (bool, error) {
	var v sql.NullInt64
	err := db.sql.QueryRowContext(ctx, db.q.migrationLatest).Scan(&v)
	if err != nil {
		// No schema_migrations table yet is "not current", not a failure.
		var exists int
		if qerr := db.sql.QueryRowContext(ctx, db.q.migrationsTableExists).Scan(&exists); qerr == nil && exists == 0 {
			return false, nil
		}
		return false, fmt.Errorf("store: read schema version: %w", err)
	}
	if int(v.Int64) != len(db.migrations) {
		return false, nil
	}
	migrator, err := rivermigrate.New(db.riverDriver, &rivermigrate.Config{Logger: db.quietLogger()})
	if err != nil {
		return false, fmt.Errorf("store: river migrations: %w", err)
	}
	res, err := migrator.Validate(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: river migrations: %w", err)
	}
	return res.OK, nil
}

// quietLogger keeps River's migrator from printing every statement it runs.
func (db *DB) quietLogger() *slog.Logger {
	return slog.New(levelFloor{db.log.Handler(), slog.LevelWarn})
}

// levelFloor drops records below a level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(as), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}
