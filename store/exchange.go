package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"refbridge"
)

// maxKeyLen bounds idempotency keys (intervention numbers, UUIDs, "<id>#<12>").
const maxKeyLen = 512

// row is an exchange as stored: payload still sealed.
type row struct {
	id, flow, key, hash, state, reason, problems string
	attempts                                     int
	lastErr, peerRef                             string
	payload                                      []byte
	keyID                                        sql.NullString
	created, updated                             int64
	purged                                       sql.NullInt64
	// resume is where a dead exchange resumes (resumePoint as JSON), "" otherwise.
	resume string
}

func scanRow(s interface{ Scan(...any) error }) (row, error) {
	var r row
	err := s.Scan(&r.id, &r.flow, &r.key, &r.hash, &r.state, &r.reason, &r.problems, &r.attempts,
		&r.lastErr, &r.peerRef, &r.payload, &r.keyID, &r.created, &r.updated, &r.purged, &r.resume)
	return r, err
}

// exchange turns a row into the domain record; the payload stays nil
// (callers that need it call open).
func (r row) exchange() (refbridge.Exchange, error) {
	ex := refbridge.Exchange{
		ID: r.id, Flow: refbridge.Flow(r.flow), Key: r.key, ContentHash: r.hash,
		State: refbridge.ExchangeState(r.state), Reason: r.reason, Attempts: r.attempts,
		LastError: refbridge.ErrorCode(r.lastErr), PeerRef: r.peerRef,
		CreatedAt: fromMicros(r.created), UpdatedAt: fromMicros(r.updated), PurgedAt: fromMicros(r.purged.Int64),
	}
	if r.problems != "" {
		if err := json.Unmarshal([]byte(r.problems), &ex.Problems); err != nil {
			return ex, fmt.Errorf("exchange %s: problems column: %w", r.id, err)
		}
	}
	if r.resume != "" {
		rp, err := r.resumePoint()
		if err != nil {
			return ex, err
		}
		ex.DeadFrom = rp.State
	}
	return ex, nil
}

// open decrypts the row's payload (nil when there is none).
func (db *DB) open(r row) ([]byte, error) {
	if r.payload == nil {
		return nil, nil
	}
	if !r.keyID.Valid {
		return nil, errors.New("payload has no key id")
	}
	return db.keys.open(r.keyID.String, r.payload, aad(r.id, refbridge.Flow(r.flow), r.key))
}

// seal encrypts a payload for row (id, flow, key); nil stays NULL.
func (db *DB) seal(plain []byte, id string, flow refbridge.Flow, key string) ([]byte, sql.NullString) {
	if plain == nil {
		return nil, sql.NullString{}
	}
	sealed, kid := db.keys.seal(plain, aad(id, flow, key))
	return sealed, sql.NullString{String: kid, Valid: true}
}

func encodeProblems(ps []refbridge.Problem) (string, error) {
	if len(ps) == 0 {
		return "", nil
	}
	b, err := json.Marshal(ps)
	return string(b), err
}

func knownFlow(f refbridge.Flow) bool { return slices.Contains(refbridge.Flows(), f) }

// allStates lists every exchange state (the domain has no such list).
func allStates() []refbridge.ExchangeState {
	return []refbridge.ExchangeState{
		refbridge.StateReceived, refbridge.StateMapped, refbridge.StateDelivered, refbridge.StateDone,
		refbridge.StateHeld, refbridge.StateRejected, refbridge.StateFailed, refbridge.StateDead,
	}
}

func knownState(s refbridge.ExchangeState) bool { return slices.Contains(allStates(), s) }

func newID() (string, error) {
	u, err := uuid.NewV7() // time-ordered: new rows append to the primary-key index
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// Receive stores a batch durably: one transaction for the whole batch,
// committed (fsynced) before it returns, so the caller may answer 2xx. For
// each item, in order:
//   - a new (flow, key) becomes an exchange in item.State (received, or
//     rejected with its Problems) → IntakeAccepted or IntakeRejected;
//   - the same key and ContentHash, or any existing key for a CreateOnly
//     item → IntakeDuplicate, nothing changes;
//   - the same key with a new ContentHash replaces payload and hash and
//     re-opens the exchange in item.State, whatever state it was in, even
//     terminal and purged → IntakeUpdated (IntakeRejected if item.State is
//     rejected).
//
// Every accepted, updated or rejected item gets a ProcessExchange job and a
// "received" audit event (Outcome: the intake outcome) in the same
// transaction (rejected ones still owe the sender a failure callback);
// duplicates get neither.
// An invalid item fails the whole batch and nothing is stored.
func (db *DB) Receive(ctx context.Context, items []refbridge.Inbound) ([]refbridge.Intake, error) {
	out := make([]refbridge.Intake, len(items))
	if len(items) == 0 {
		return out, nil
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		find, err := tx.PrepareContext(ctx, db.q.intakeFind)
		if err != nil {
			return err
		}
		defer find.Close()
		insert, err := tx.PrepareContext(ctx, db.q.intakeInsert)
		if err != nil {
			return err
		}
		defer insert.Close()

		now := db.nowMicros()
		jobs := make([]river.InsertManyParams, 0, len(items))
		events := make([]refbridge.AuditEvent, 0, len(items))
		queued := make(map[string]bool, len(items))
		for i, it := range items {
			state, err := checkInbound(i, it)
			if err != nil {
				return err
			}
			problems, err := encodeProblems(it.Problems)
			if err != nil {
				return err
			}
			outcome := refbridge.IntakeAccepted
			var id, hash string
			switch err := find.QueryRowContext(ctx, string(it.Flow), it.Key).Scan(&id, &hash); {
			case errors.Is(err, sql.ErrNoRows):
				if id, err = newID(); err != nil {
					return err
				}
				sealed, kid := db.seal(it.Payload, id, it.Flow, it.Key)
				if _, err := insert.ExecContext(ctx, id, string(it.Flow), it.Key, it.ContentHash, string(state),
					problems, it.PeerRef, sealed, kid, now, now); err != nil {
					return err
				}
			case err != nil:
				return err
			case hash == it.ContentHash || it.CreateOnly:
				out[i] = refbridge.Intake{ExchangeID: id, Outcome: refbridge.IntakeDuplicate}
				continue
			default:
				outcome = refbridge.IntakeUpdated
				sealed, kid := db.seal(it.Payload, id, it.Flow, it.Key)
				if _, err := tx.ExecContext(ctx, db.q.intakeUpdate, it.ContentHash, string(state), problems,
					it.PeerRef, sealed, kid, now, id); err != nil {
					return err
				}
			}
			if state == refbridge.StateRejected {
				outcome = refbridge.IntakeRejected
			}
			out[i] = refbridge.Intake{ExchangeID: id, Outcome: outcome}
			events = append(events, intakeEvent(id, it, outcome))
			// River refuses a batch naming one unique job twice (the same key
			// new and updated in one batch): one job processes the latest row.
			if !queued[id] {
				queued[id] = true
				jobs = append(jobs, river.InsertManyParams{Args: ProcessExchange{ExchangeID: id}, InsertOpts: db.insertOpts(time.Time{})})
			}
		}
		if err := db.appendAudit(ctx, tx, now, events); err != nil {
			return err
		}
		if len(jobs) > 0 {
			// The fast form skips reading the rows back; unique conflicts are
			// still skipped (ON CONFLICT DO NOTHING).
			if _, err := db.inserter.InsertManyFastTx(ctx, tx, jobs); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, errStore("receive", err)
	}
	return out, nil
}

// checkInbound validates one item; "" state means received.
func checkInbound(i int, it refbridge.Inbound) (refbridge.ExchangeState, error) {
	bad := func(format string, args ...any) error {
		return refbridge.Errorf(refbridge.EInvalid, "item %d: "+format, append([]any{i}, args...)...)
	}
	switch {
	case !knownFlow(it.Flow):
		return "", bad("unknown flow %q", it.Flow)
	case strings.TrimSpace(it.Key) != it.Key || it.Key == "" || len(it.Key) > maxKeyLen:
		// A key with surrounding blanks would be a second exchange for the
		// same message; the edge trims keys, so this is a caller's bug.
		return "", bad("key must be 1-%d bytes without surrounding white space", maxKeyLen)
	case it.ContentHash == "":
		return "", bad("content hash is required")
	}
	switch it.State {
	case "", refbridge.StateReceived:
		return refbridge.StateReceived, nil
	case refbridge.StateRejected:
		return refbridge.StateRejected, nil
	}
	return "", bad("state %q: an inbound item is received or rejected", it.State)
}

// Get returns an exchange with its payload decrypted (nil once purged). An
// unknown id is ENotFound; a payload that does not authenticate (tampered,
// copied from another row, key missing) is EInternal.
func (db *DB) Get(ctx context.Context, id string) (refbridge.Exchange, error) {
	return db.get(ctx, "exchange "+id, db.q.getByID, id)
}

// GetByKey returns the exchange of a flow with that idempotency key, as Get.
func (db *DB) GetByKey(ctx context.Context, flow refbridge.Flow, key string) (refbridge.Exchange, error) {
	return db.get(ctx, fmt.Sprintf("exchange %s/%s", flow, key), db.q.getByKey, string(flow), key)
}

func (db *DB) get(ctx context.Context, what, query string, args ...any) (refbridge.Exchange, error) {
	r, err := scanRow(db.sql.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return refbridge.Exchange{}, refbridge.Errorf(refbridge.ENotFound, "%s not found", what)
	}
	if err != nil {
		return refbridge.Exchange{}, errStore("get", err)
	}
	ex, err := r.exchange()
	if err != nil {
		return refbridge.Exchange{}, errStore("get", err)
	}
	if ex.Payload, err = db.open(r); err != nil {
		return refbridge.Exchange{}, &refbridge.Error{Code: refbridge.EInternal, Message: fmt.Sprintf("exchange %s: payload unreadable", r.id), Err: err}
	}
	return ex, nil
}

// Change is one state transition of an exchange, applied by Transition in
// one transaction.
type Change struct {
	// From are the states the exchange must be in; empty means any. A
	// mismatch is EConflict, so two workers never both move one exchange.
	From []refbridge.ExchangeState
	// IfContentHash, when set, must equal the exchange's ContentHash: an
	// update that arrived while a worker held the old content is EConflict,
	// not overwritten by work done on stale content.
	IfContentHash string
	// IfReason, when set, must equal the exchange's Reason: a step within a
	// state (e.g. a sync write-back pending) must not overwrite a reason
	// another writer recorded meanwhile (e.g. consent withdrawn).
	IfReason string
	To       refbridge.ExchangeState
	// Reason is a machine code; "" clears it.
	Reason string
	// Problems replace the exchange's problems; nil clears them.
	Problems []refbridge.Problem
	// PeerRef, when not "", replaces the peer reference.
	PeerRef string
	// ContentHash, when not "", replaces the content hash: a change that
	// puts new content in the exchange (a held referral released with the
	// case as it is now) records which content that is, so intake of the
	// same content later is a duplicate.
	ContentHash string
	// Payload, when not nil, replaces the payload, encrypted under the current key.
	Payload []byte
	// Attempted counts an attempt (attempts++).
	Attempted bool
	// LastError, when not "", records the code of the failed attempt; it is
	// kept through later successes as history.
	LastError refbridge.ErrorCode
	// Enqueue adds a ProcessExchange job in the same transaction, not before
	// RunAt. River keeps one live job per exchange, so from inside the
	// exchange's own running job this is a no-op: there, snooze the job
	// (river.JobSnooze) or return an error to run it again.
	Enqueue bool
	RunAt   time.Time
	// CompleteJob, when set, marks that running job completed in the same
	// transaction (the worker's context must be passed to Transition). The
	// job's last change and its end then commit together, so an update that
	// commits after it always finds no live job and gets one of its own.
	CompleteJob *river.Job[ProcessExchange]

	// AuditKind, when set, is the kind of audit event the change records.
	// Unset, a change of state records one by its target: held → held,
	// done → decided (flows F1d, F2d) or delivered (F1, F2), delivered →
	// delivered, failed → failed, dead → dead; other targets, and a change
	// that keeps the state (retry bookkeeping), record none. The event's
	// Outcome is To and its Reason is Reason.
	AuditKind refbridge.AuditKind
	// Actor is who permitted the share (a Primero user_name or the proGres
	// requester's code, never a person's name).
	Actor string
	// Fields are the names (never values) of the fields shared; each must
	// satisfy refbridge.ValidAuditField.
	Fields []string
	// Peer is the system shared with; default the flow's destination
	// ("primero" for F1 and F2d, "dtp" for F1d and F2).
	Peer string
	// Override records that consent was overridden by Actor.
	Override bool

	// resume (Retry) takes To, Reason and Problems from where the dead
	// exchange died, and resets its attempts.
	resume bool
	// auditReason, when set, is the audit event's Reason instead of Reason
	// (a focal point's reason code for a retry or discard).
	auditReason string
}

// Transition applies c to exchange id in one transaction and returns the
// result: ENotFound for an unknown id, EConflict when c's preconditions do
// not hold. The change's audit event (see Change.AuditKind) is appended in
// the same transaction. A terminal To with Retention 0 deletes the payload
// and sets PurgedAt in the same transaction, and records a "purged" event.
// The returned exchange carries the payload decrypted, or nil when it is
// purged or does not decrypt (Get reports that error; a transition, e.g.
// dead-lettering, must not fail on it).
func (db *DB) Transition(ctx context.Context, id string, c Change) (refbridge.Exchange, error) {
	if !knownState(c.To) {
		return refbridge.Exchange{}, refbridge.Errorf(refbridge.EInvalid, "exchange %s: unknown target state %q", id, c.To)
	}
	if c.AuditKind != "" && !c.AuditKind.Valid() {
		return refbridge.Exchange{}, refbridge.Errorf(refbridge.EInvalid, "exchange %s: unknown audit kind %q", id, c.AuditKind)
	}
	if err := checkAuditFields(c.Fields); err != nil {
		return refbridge.Exchange{}, err
	}
	problems, err := encodeProblems(c.Problems)
	if err != nil {
		return refbridge.Exchange{}, errStore("transition", err)
	}
	next, err := db.groupTransition(ctx, id, c, problems)
	if err != nil {
		return refbridge.Exchange{}, errStore("transition", err)
	}
	ex, err := next.exchange()
	if err != nil {
		return refbridge.Exchange{}, errStore("transition", err)
	}
	switch {
	case c.Payload != nil && next.payload != nil:
		ex.Payload = slices.Clone(c.Payload)
	default:
		ex.Payload, _ = db.open(next)
	}
	return ex, nil
}

// applyChange applies c to exchange id inside tx and returns the new row.
func (db *DB) applyChange(ctx context.Context, tx *sql.Tx, id string, c Change, problems string) (row, error) {
	var next row
	cur, err := scanRow(tx.QueryRowContext(ctx, db.q.lockByID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return next, refbridge.Errorf(refbridge.ENotFound, "exchange %s not found", id)
	}
	if err != nil {
		return next, err
	}
	if len(c.From) > 0 && !slices.Contains(c.From, refbridge.ExchangeState(cur.state)) {
		return next, refbridge.Errorf(refbridge.EConflict, "exchange %s is %s, not %s", id, cur.state, joinStates(c.From))
	}
	if c.IfReason != "" && c.IfReason != cur.reason {
		return next, refbridge.Errorf(refbridge.EConflict, "exchange %s reason is %q, not %q", id, cur.reason, c.IfReason)
	}
	if c.IfContentHash != "" && c.IfContentHash != cur.hash {
		return next, refbridge.Errorf(refbridge.EConflict, "exchange %s content changed (an update arrived)", id)
	}
	if c.resume {
		if cur.resume == "" {
			return next, refbridge.Errorf(refbridge.EConflict, "exchange %s was dead-lettered without a record of its state; it cannot be resumed safely", id)
		}
		rp, err := cur.resumePoint()
		if err != nil {
			return next, err
		}
		c.To, c.Reason, problems = rp.State, rp.Reason, rp.Problems
	}
	next = cur
	now := db.nowMicros()
	next.state, next.reason, next.problems, next.updated = string(c.To), c.Reason, problems, now
	if c.Attempted {
		next.attempts++
	}
	if c.resume {
		next.attempts = 0 // a fresh retry budget: the focal point fixed the cause
	}
	if c.LastError != "" {
		next.lastErr = string(c.LastError)
	}
	if c.PeerRef != "" {
		next.peerRef = c.PeerRef
	}
	if c.ContentHash != "" {
		next.hash = c.ContentHash
	}
	if c.Payload != nil {
		next.payload, next.keyID = db.seal(c.Payload, cur.id, refbridge.Flow(cur.flow), cur.key)
	}
	var events []refbridge.AuditEvent
	if ev, ok := c.changeEvent(cur); ok {
		events = append(events, ev)
	}
	if c.To.Terminal() && db.retention == 0 {
		if next.payload != nil || !next.purged.Valid {
			next.purged = sql.NullInt64{Int64: now, Valid: true}
			events = append(events, purgedEvent(cur.id, refbridge.Flow(cur.flow), cur.key, c.To))
		}
		next.payload, next.keyID = nil, sql.NullString{}
	}
	switch {
	case c.To == refbridge.StateDead && cur.state != string(refbridge.StateDead):
		// Remember where it died: a retry must resume exactly there.
		b, err := json.Marshal(resumePoint{State: refbridge.ExchangeState(cur.state), Reason: cur.reason, Problems: cur.problems})
		if err != nil {
			return next, err
		}
		next.resume = string(b)
	case c.To != refbridge.StateDead:
		next.resume = ""
	}
	res, err := tx.ExecContext(ctx, db.q.transition, next.hash, next.state, next.reason, next.problems, next.attempts,
		next.lastErr, next.peerRef, next.payload, next.keyID, next.updated, next.purged, next.resume,
		id, cur.state, cur.hash)
	if err != nil {
		return next, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return next, err
	} else if n != 1 {
		return next, refbridge.Errorf(refbridge.EConflict, "exchange %s changed concurrently", id)
	}
	if err := db.appendAudit(ctx, tx, now, events); err != nil {
		return next, err
	}
	if c.Enqueue {
		if _, err := db.inserter.InsertTx(ctx, tx, ProcessExchange{ExchangeID: id}, db.insertOpts(c.RunAt)); err != nil {
			return next, fmt.Errorf("enqueue: %w", err)
		}
	}
	if c.CompleteJob != nil {
		if err := db.d.completeJob(ctx, tx, c.CompleteJob); err != nil {
			return next, fmt.Errorf("complete job: %w", err)
		}
	}
	return next, nil
}

func joinStates(ss []refbridge.ExchangeState) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, "|")
}

// Filter selects exchanges for List and Requeue; zero fields match all.
type Filter struct {
	Flow   refbridge.Flow
	State  refbridge.ExchangeState
	Reason string
	Key    string
	// KeyPrefix matches keys that start with it: an intervention number
	// finds its F1 and F1d exchanges, a case id its F2 and F2d ones.
	KeyPrefix string
	// Since (inclusive) and Until (exclusive) bound CreatedAt.
	Since, Until time.Time
	// Limit ≤ 0 means no limit.
	Limit, Offset int
}

func (f Filter) where(d *dialect) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) { conds = append(conds, cond); args = append(args, arg) }
	if f.Flow != "" {
		add("flow = ?", string(f.Flow))
	}
	if f.State != "" {
		add("state = ?", string(f.State))
	}
	if f.Reason != "" {
		add("reason = ?", f.Reason)
	}
	if f.Key != "" {
		add("idem_key = ?", f.Key)
	}
	if f.KeyPrefix != "" {
		// A byte range uses the key index; substr keeps the match exact
		// whatever the range admits.
		if upper, ok := prefixUpperBound(f.KeyPrefix); ok {
			add("idem_key"+d.bytewise+" >= ?", f.KeyPrefix)
			add("idem_key"+d.bytewise+" < ?", upper)
		}
		conds = append(conds, "substr(idem_key, 1, ?) = ?")
		args = append(args, utf8.RuneCountInString(f.KeyPrefix), f.KeyPrefix) // substr counts characters
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", f.Since.UTC().UnixMicro())
	}
	if !f.Until.IsZero() {
		add("created_at < ?", f.Until.UTC().UnixMicro())
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// prefixUpperBound is the least string above every string that starts
// with an ASCII prefix (its last byte incremented); false for a prefix
// whose bound would not be valid UTF-8, which is then matched by scan.
func prefixUpperBound(prefix string) (string, bool) {
	last := prefix[len(prefix)-1]
	for i := range len(prefix) {
		if prefix[i] >= 0x7f {
			return "", false
		}
	}
	return prefix[:len(prefix)-1] + string(rune(last+1)), true
}

// page appends LIMIT/OFFSET; "no limit" is the largest int32, which both
// SQLite and PostgreSQL accept.
func (f Filter) page(args []any) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = math.MaxInt32
	}
	return " LIMIT ? OFFSET ?", append(args, limit, max(f.Offset, 0))
}

// List returns the exchanges matching f, newest first, without payloads,
// and how many match in all (for paging).
func (db *DB) List(ctx context.Context, f Filter) ([]refbridge.Exchange, int, error) {
	where, args := f.where(db.d)
	var total int
	if err := db.sql.QueryRowContext(ctx, db.d.bind(db.q.listCount+where), args...).Scan(&total); err != nil {
		return nil, 0, errStore("list", err)
	}
	page, pargs := f.page(slices.Clone(args))
	rows, err := db.sql.QueryContext(ctx, db.d.bind(db.q.listSelect+where+" ORDER BY created_at DESC, id DESC"+page), pargs...)
	if err != nil {
		return nil, 0, errStore("list", err)
	}
	defer rows.Close()
	var out []refbridge.Exchange
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, 0, errStore("list", err)
		}
		ex, err := r.exchange()
		if err != nil {
			return nil, 0, errStore("list", err)
		}
		out = append(out, ex)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, errStore("list", err)
	}
	return out, total, nil
}

// Counts returns how many exchanges created since then are in each state,
// per flow (zero since counts all). Absent combinations are zero.
func (db *DB) Counts(ctx context.Context, since time.Time) (map[refbridge.Flow]map[refbridge.ExchangeState]int, error) {
	var from int64
	if !since.IsZero() {
		from = since.UTC().UnixMicro()
	}
	rows, err := db.sql.QueryContext(ctx, db.q.countsSince, from)
	if err != nil {
		return nil, errStore("counts", err)
	}
	defer rows.Close()
	out := map[refbridge.Flow]map[refbridge.ExchangeState]int{}
	for rows.Next() {
		var flow, state string
		var n int
		if err := rows.Scan(&flow, &state, &n); err != nil {
			return nil, errStore("counts", err)
		}
		if out[refbridge.Flow(flow)] == nil {
			out[refbridge.Flow(flow)] = map[refbridge.ExchangeState]int{}
		}
		out[refbridge.Flow(flow)][refbridge.ExchangeState(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, errStore("counts", err)
	}
	return out, nil
}

// Requeue enqueues a ProcessExchange job for every exchange matching f,
// oldest first, in one transaction, and returns how many it enqueued.
// Exchanges that already have a live job are skipped by River's unique
// constraint. It is the safety net for an exchange left without a job: an
// update whose job insert was skipped because the previous job was still
// finishing, or an operator's "run these again".
func (db *DB) Requeue(ctx context.Context, f Filter) (int, error) {
	where, args := f.where(db.d)
	page, pargs := f.page(args)
	enqueued := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.d.bind(db.q.requeueFrom+where+" ORDER BY created_at, id"+page), pargs...)
		if err != nil {
			return err
		}
		var jobs []river.InsertManyParams
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			jobs = append(jobs, river.InsertManyParams{Args: ProcessExchange{ExchangeID: id}, InsertOpts: db.insertOpts(time.Time{})})
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		res, err := db.inserter.InsertManyTx(ctx, tx, jobs)
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				enqueued++
			}
		}
		return nil
	})
	if err != nil {
		return 0, errStore("requeue", err)
	}
	return enqueued, nil
}
