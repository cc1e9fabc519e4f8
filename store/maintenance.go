package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"refbridge"
)

// rotateBatch is how many payloads one RotateKeys transaction re-encrypts:
// small enough that intake waits at most milliseconds behind it.
const rotateBatch = 200

// Cursor returns a poller's saved position, "" when unset.
func (db *DB) Cursor(ctx context.Context, name string) (string, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, db.q.cursorGet, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", errStore("cursor", err)
	}
	return v, nil
}

// SetCursor saves a poller's position durably. Save it after the items the
// poll found are received, never before: a crash in between re-polls them
// (deduplicated by Receive) instead of skipping them.
func (db *DB) SetCursor(ctx context.Context, name, value string) error {
	if name == "" {
		return refbridge.Errorf(refbridge.EInvalid, "cursor name is required")
	}
	if _, err := db.sql.ExecContext(ctx, db.q.cursorSet, name, value, db.nowMicros()); err != nil {
		return errStore("set cursor", err)
	}
	return nil
}

// Purge deletes the payloads of terminal exchanges that became terminal
// more than Retention ago (with Retention 0 Transition already did, so this
// only catches rows left from a longer retention), and returns how many.
// Run it periodically.
func (db *DB) Purge(ctx context.Context) (int, error) {
	now := db.now()
	res, err := db.sql.ExecContext(ctx, db.q.purge, now.UTC().UnixMicro(), now.Add(-db.retention).UTC().UnixMicro())
	if err != nil {
		return 0, errStore("purge", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, errStore("purge", err)
	}
	if n > 0 {
		db.log.Info("store: payloads purged", "exchanges", n)
	}
	return int(n), nil
}

// RotateKeys re-encrypts every payload not under the current key, in
// batches of one transaction each, and returns how many it re-encrypted.
// The key id is stored per row, so an interrupted rotation resumes where it
// stopped; once it returns, keys other than the current one can be removed.
func (db *DB) RotateKeys(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := db.rotateBatch(ctx)
		total += n
		if err != nil {
			return total, errStore("rotate keys", err)
		}
		if n == 0 {
			if total > 0 {
				db.log.Info("store: payloads re-encrypted", "exchanges", total, "key", db.keys.Current())
			}
			return total, nil
		}
	}
}

func (db *DB) rotateBatch(ctx context.Context) (int, error) {
	n := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.q.rotateSelect, db.keys.Current(), rotateBatch)
		if err != nil {
			return err
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.flow, &r.key, &r.keyID, &r.payload); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, r := range batch {
			plain, err := db.open(r)
			if err != nil {
				return fmt.Errorf("exchange %s: %w", r.id, err)
			}
			sealed, kid := db.seal(plain, r.id, refbridge.Flow(r.flow), r.key)
			clear(plain)
			if _, err := tx.ExecContext(ctx, db.q.rotateUpdate, sealed, kid, r.id, r.keyID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
