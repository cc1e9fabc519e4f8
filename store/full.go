package store

import (
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"refbridge"
)

// fullHold is how long after a write failed for lack of space the store
// reports itself full (Ping) unless a write succeeds meanwhile. Without a
// bound, a node that stopped receiving writes (taken out of the load
// balancer because it was not ready) would never learn that space is back.
const fullHold = 10 * time.Second

// fullState remembers the last write refused for lack of space: the Unix
// time in nanoseconds, 0 when the last write succeeded.
type fullState struct{ since atomic.Int64 }

// isDiskFull reports whether a database failure is the disk (or the
// database) being full: SQLite's SQLITE_FULL ("database or disk is full"),
// its shared-memory file failing to grow, an ENOSPC from the file system,
// or PostgreSQL's disk_full (SQLSTATE 53100).
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		if c&0xff == sqlite3.SQLITE_FULL || c == sqlite3.SQLITE_IOERR_SHMSIZE {
			return true
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" {
		return true
	}
	if errors.Is(err, syscall.ENOSPC) {
		return true
	}
	// Drivers that lose the typed error on the way keep SQLite's words.
	return strings.Contains(err.Error(), "database or disk is full")
}

// writeOutcome records the outcome of one of the store's write
// transactions and turns a disk-full failure into EStoreFull (keeping the
// cause for errors.Is), so that callers can tell it apart: nothing was
// stored, and the same call succeeds once space is freed. It logs when the
// store becomes full and when writes succeed again, once each, with the
// code only.
func (db *DB) writeOutcome(err error) error {
	switch {
	case err == nil:
		if since := db.full.since.Swap(0); since != 0 {
			db.log.Info("store: writes succeed again after the disk was full",
				"full_for", time.Since(time.Unix(0, since)).Round(time.Millisecond).String())
		}
		return nil
	case !isDiskFull(err):
		return err
	}
	if db.full.since.Swap(time.Now().UnixNano()) == 0 {
		db.log.Error("store: disk full; nothing more can be stored until space is freed", "code", string(refbridge.EStoreFull))
	}
	var e *refbridge.Error
	if errors.As(err, &e) && e.Code == refbridge.EStoreFull {
		return err
	}
	return &refbridge.Error{Code: refbridge.EStoreFull, Message: "store: disk full", Err: err}
}

// NoteWrite is writeOutcome for a write made outside the store's own
// methods on its database, e.g. a River insert through the queue client:
// it returns err, as EStoreFull when the disk is full, and keeps Ping's
// view of the disk current.
func (db *DB) NoteWrite(err error) error { return db.writeOutcome(err) }

// fullErr is EStoreFull while a write failed for lack of space within
// fullHold and none has succeeded since, nil otherwise.
func (db *DB) fullErr() error {
	since := db.full.since.Load()
	if since == 0 || time.Since(time.Unix(0, since)) > fullHold {
		return nil
	}
	return refbridge.Errorf(refbridge.EStoreFull, "store: disk full: the last write failed for lack of space")
}
