package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// maxGroup bounds how many transitions one transaction commits together.
const maxGroup = 64

// transitionReq is one Transition waiting to be committed.
type transitionReq struct {
	ctx      context.Context
	id       string
	c        Change
	problems string
	done     chan struct{}
	next     row
	err      error
}

// groupTransition applies one change in a transaction shared with the
// transitions other workers asked for meanwhile (group commit): whoever
// holds the writer's turn commits everyone waiting, each change inside its
// own savepoint so a conflict undoes only that change. One commit (one
// fsync, one pass of the writer's turn) then serves many exchanges; the
// atomicity of each change and the order of the audit chain are unchanged.
func (db *DB) groupTransition(ctx context.Context, id string, c Change, problems string) (row, error) {
	req := &transitionReq{ctx: ctx, id: id, c: c, problems: problems, done: make(chan struct{})}
	db.groupMu.Lock()
	db.pending = append(db.pending, req)
	db.groupMu.Unlock()
	// No ctx case here: once queued, the change may already be in another
	// writer's transaction, so the caller must learn whether it committed.
	// The wait is bounded by one group's commit.
	select {
	case <-req.done:
		return req.next, req.err
	case db.turn <- struct{}{}:
	}
	defer func() { <-db.turn }()
	for {
		select {
		case <-req.done:
			return req.next, req.err
		default:
		}
		db.commitGroup(db.takePending())
	}
}

// takePending removes up to maxGroup waiting transitions, oldest first.
func (db *DB) takePending() []*transitionReq {
	db.groupMu.Lock()
	defer db.groupMu.Unlock()
	n := min(len(db.pending), maxGroup)
	batch := make([]*transitionReq, n)
	copy(batch, db.pending)
	db.pending = append(db.pending[:0], db.pending[n:]...)
	return batch
}

// commitGroup applies batch in one transaction and tells each request its
// outcome. It runs under the writer's turn. Statements run under contexts
// no single caller can cancel (each keeps its caller's values, which River
// needs to complete a job): SQLite answers an interrupted write inside a
// transaction by rolling back the whole transaction, everyone's changes.
func (db *DB) commitGroup(batch []*transitionReq) {
	if len(batch) == 0 {
		return
	}
	var tx *sql.Tx
	var err error
	defer func() {
		// A panic must not leave the only connection inside a transaction
		// and every other writer waiting for an answer.
		if p := recover(); p != nil {
			if tx != nil {
				tx.Rollback()
			}
			err = fmt.Errorf("store: transition panicked: %v", p)
		}
		err = db.writeOutcome(err)
		for _, r := range batch {
			if err != nil {
				r.err = err
			}
			close(r.done)
		}
	}()
	tx, err = db.sql.BeginTx(context.Background(), nil)
	if err != nil {
		err = fmt.Errorf("store: begin: %w", err)
		return
	}
	// The audit chain's lock first, as in inTx: the changes below lock
	// exchange rows in no particular order, which is deadlock-free only
	// because every writer of every replica holds this lock before any row.
	if db.d.lockAudit != "" {
		if _, err = tx.ExecContext(context.Background(), db.d.lockAudit); err != nil {
			err = errors.Join(fmt.Errorf("store: lock: %w", err), ignoreDone(tx.Rollback()))
			return
		}
	}
	for _, r := range batch {
		if cerr := r.ctx.Err(); cerr != nil {
			r.err = cerr
			continue
		}
		if err = db.applyInSavepoint(context.WithoutCancel(r.ctx), tx, r); err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
			return
		}
	}
	if err = tx.Commit(); err != nil {
		err = fmt.Errorf("store: commit: %w", err)
	}
}

// applyInSavepoint applies one request; its own failure (a conflict, an
// unknown id) is recorded on it and undone alone. Only a failure to undo
// it is returned, which ends the whole group.
func (db *DB) applyInSavepoint(ctx context.Context, tx *sql.Tx, r *transitionReq) error {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT refbridge_change"); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	r.next, r.err = db.applyChange(ctx, tx, r.id, r.c, r.problems)
	if r.err != nil {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO refbridge_change"); err != nil {
			return fmt.Errorf("store: roll back a change of exchange %s: %w", r.id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "RELEASE refbridge_change"); err != nil {
		return fmt.Errorf("store: release savepoint: %w", err)
	}
	return nil
}
