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
// Each purged exchange gets a "purged" audit event in the transaction that
// purges it (batches of purgeBatch). Run it periodically.
func (db *DB) Purge(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := db.purgeBatch(ctx)
		total += n
		if err != nil {
			return total, errStore("purge", err)
		}
		if n < purgeBatch {
			if total > 0 {
				db.log.Info("store: payloads purged", "exchanges", total)
			}
			return total, nil
		}
	}
}

// purgeBatch is how many payloads one Purge transaction deletes.
const purgeBatch = 500

func (db *DB) purgeBatch(ctx context.Context) (int, error) {
	n := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		now := db.now()
		at := now.UTC().UnixMicro()
		rows, err := tx.QueryContext(ctx, db.q.purgeSelect, now.Add(-db.retention).UTC().UnixMicro(), purgeBatch)
		if err != nil {
			return err
		}
		var events []refbridge.AuditEvent
		for rows.Next() {
			var id, flow, key, state string
			if err := rows.Scan(&id, &flow, &key, &state); err != nil {
				rows.Close()
				return err
			}
			events = append(events, purgedEvent(id, refbridge.Flow(flow), key, refbridge.ExchangeState(state)))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, ev := range events {
			res, err := tx.ExecContext(ctx, db.q.purgeOne, at, ev.ExchangeID)
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil {
				return err
			} else if k != 1 {
				return fmt.Errorf("exchange %s changed while being purged", ev.ExchangeID)
			}
		}
		n = len(events)
		return db.appendAudit(ctx, tx, at, events)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
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
