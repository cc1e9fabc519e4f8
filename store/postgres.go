package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
)

// postgresMaxConns bounds each replica's pool. The store's own writers
// queue for one connection (DB.turn), so the rest serve reads and River
// (producer, completer, leader, workers' reads); 16 replicas then stay well
// under PostgreSQL's default max_connections of 100 with room for tools.
const postgresMaxConns = 16

// postgresConnectTimeout applies when the URL sets no connect_timeout, so
// an unreachable server fails Open instead of hanging it.
const postgresConnectTimeout = 10 * time.Second

// schemaLockKey is the advisory lock Migrate holds on PostgreSQL: an
// arbitrary constant ("refbridg" in ASCII) that other applications sharing
// the server are unlikely to use.
const schemaLockKey = 0x7265666272696467

// postgresDialect is the shared store: several replicas on one PostgreSQL.
// It differs from SQLite only in this value; every statement and every code
// path is the same.
func postgresDialect() *dialect {
	sub, err := fs.Sub(migrationFiles, "migrations/postgres")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return &dialect{
		name:       "postgres",
		migrations: sub,
		migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)`,
		tableExists: func(t string) string {
			return "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '" + t + "'"
		},
		bind:     bindDollar,
		lockRow:  " FOR UPDATE",
		bytewise: ` COLLATE "C"`,
		// The anchor row is the chain's head; locking it first orders every
		// writer of every replica (see dialect.lockAudit).
		lockAudit:  `SELECT seq FROM audit_anchor WHERE id = 1 FOR UPDATE`,
		lockSchema: `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(schemaLockKey, 10) + `)`,
		open:       openPostgres,
		// database/sql, not riverpgxv5: River's transaction type stays *sql.Tx,
		// so the store's transactions enqueue and complete jobs exactly as on
		// SQLite. Without a pgx listener the driver polls, as on SQLite.
		riverDriver: func(pool *sql.DB) riverdriver.Driver[*sql.Tx] { return riverdatabasesql.New(pool) },
		completeJob: func(ctx context.Context, tx *sql.Tx, job *river.Job[ProcessExchange]) error {
			_, err := river.JobCompleteTx[*riverdatabasesql.Driver](ctx, tx, job)
			return err
		},
		// None: other replicas may be working the jobs a stopped process
		// left running. River's rescuer retries them after RescueAfter.
		recoverJobs: nil,
	}
}

// openPostgres opens a pgx pool through database/sql and checks that the
// server answers. Errors name the host and database, never the password
// (pgx's own errors redact it too); no lock file: replicas share the database.
func openPostgres(ctx context.Context, cfg Config) (*sql.DB, func() error, error) {
	conf, err := pgx.ParseConfig(cfg.Path)
	if err != nil {
		// Not %w: a URL that does not parse may still hold a password that
		// pgx's best-effort redaction misses.
		return nil, nil, errors.New("store: Path is not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE?sslmode=...)")
	}
	if conf.ConnectTimeout == 0 {
		conf.ConnectTimeout = postgresConnectTimeout
	}
	where := fmt.Sprintf("%s:%d/%s", conf.Host, conf.Port, conf.Database)
	pool := stdlib.OpenDB(*conf)
	pool.SetMaxOpenConns(postgresMaxConns)
	pool.SetMaxIdleConns(postgresMaxConns)
	// Recycle connections now and then, so a failover or a restarted
	// server behind a proxy is followed without restarting refbridge.
	pool.SetConnMaxLifetime(30 * time.Minute)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("store: open postgres %s: %w", where, err), pool.Close())
	}
	return pool, nil, nil
}

// bindDollar numbers '?' placeholders as $1, $2… for PostgreSQL, leaving
// string literals, quoted identifiers and comments as they are.
func bindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		case c == '\'' || c == '"':
			// Copy through the closing quote; a doubled quote escapes one
			// and simply reopens the literal on the next pass.
			end := strings.IndexByte(q[i+1:], c)
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+end+2])
			i += end + 1
			continue
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+end])
			i += end - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
