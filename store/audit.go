package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"refbridge"
)

// The audit trail (DESIGN.md invariant 5) is a hash chain in audit_events:
// event n carries the hash of event n-1, and its own hash is SHA-256 over
// its canonical encoding (refbridge.AuditEvent.CanonicalEncoding). Events
// are written in the same transaction as the change they record, so an
// exchange never moves without its event and a rolled-back change leaves
// none. The DB type has no method that updates or deletes an event.
//
// Serialising appends. Each append reads the chain's head (the anchor row:
// seq and hash of the last event), inserts the next events and moves the
// anchor, all inside the write transaction of the change:
//   - SQLite: the store has one connection and opens every transaction with
//     BEGIN IMMEDIATE, so the read and the insert happen under the database's
//     single write lock; two appends cannot interleave. seq is also the
//     primary key, so even a bug there would fail rather than fork.
//   - PostgreSQL: every write transaction locks the anchor row first
//     (dialect.lockAudit, right after BEGIN), which serialises appenders
//     across replicas until commit; the anchor read here repeats FOR UPDATE
//     (dialect.lockRow). A sequence would not do: it hands out numbers
//     outside the transaction (gaps on rollback) and does not order the
//     prev_hash reads. Should the anchor row be deleted (tampering), seq
//     being the primary key still makes a racing append fail, not fork.
//
// Appends chain from the anchor, not from the last row: if rows were
// rewritten behind the store's back, the next event still links to the hash
// the store last wrote, so the tampering stays visible after further work
// instead of being laundered into a fresh, consistent head.

// Names of the ways VerifyAudit finds a chain broken: the Rule of the
// problem in its error. Field is "audit_events[SEQ]".
const (
	// AuditChanged: the event's content does not match its hash (a column
	// was changed, or the row is forged).
	AuditChanged = "changed"
	// AuditDeleted: a seq is missing from the chain (or from its end, by the anchor).
	AuditDeleted = "deleted"
	// AuditReordered: the event's prev_hash is not the previous event's hash
	// (events were swapped or one was inserted or rewritten before it).
	AuditReordered = "reordered"
	// AuditInserted: an event the store did not append (beyond the anchor,
	// or with an impossible seq).
	AuditInserted = "inserted"
	// AuditRewritten: the chain is consistent but does not end at the hash
	// the store recorded when it last appended (recomputed from some event on).
	AuditRewritten = "rewritten"
	// AuditAnchorMissing: the anchor row was removed.
	AuditAnchorMissing = "anchor_missing"
)

// verifyPage is how many events VerifyAudit reads per query, so a long
// walk does not hold the (single) connection against intake.
const verifyPage = 1000

// appendAudit appends evs to the chain inside tx, stamping each with at
// (Unix microseconds), its seq, prev hash and hash, and moves the anchor.
// evs must already be validated.
func (db *DB) appendAudit(ctx context.Context, tx *sql.Tx, at int64, evs []refbridge.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	seq, prev := int64(0), refbridge.AuditGenesisHash
	switch err := tx.QueryRowContext(ctx, db.q.auditAnchorGet).Scan(&seq, &prev); {
	case errors.Is(err, sql.ErrNoRows):
		// Removed anchor: start a link from genesis, which VerifyAudit then
		// reports at this event; refusing all work would be worse.
		seq, prev = 0, refbridge.AuditGenesisHash
	case err != nil:
		return fmt.Errorf("audit anchor: %w", err)
	}
	var tail int64
	if err := tx.QueryRowContext(ctx, db.q.auditTail).Scan(&tail); err != nil {
		return fmt.Errorf("audit tail: %w", err)
	}
	// A row past the anchor can only be forged; do not collide with it.
	seq = max(seq, tail)
	insert, err := tx.PrepareContext(ctx, db.q.auditInsert)
	if err != nil {
		return err
	}
	defer insert.Close()
	when := time.UnixMicro(at).UTC()
	for _, ev := range evs {
		seq++
		ev.Seq, ev.At, ev.PrevHash = seq, when, prev
		ev.Hash = ev.ComputeHash()
		fields, err := encodeFields(ev.Fields)
		if err != nil {
			return err
		}
		if _, err := insert.ExecContext(ctx, ev.Seq, at, string(ev.Kind), ev.ExchangeID, string(ev.Flow), ev.Key,
			ev.Peer, ev.Actor, fields, ev.Outcome, ev.Reason, boolInt(ev.Override), ev.PrevHash, ev.Hash); err != nil {
			return fmt.Errorf("audit append: %w", err)
		}
		prev = ev.Hash
	}
	if _, err := tx.ExecContext(ctx, db.q.auditAnchorSet, seq, prev); err != nil {
		return fmt.Errorf("audit anchor: %w", err)
	}
	return nil
}

// AppendAudit records an event that is not a state change of an exchange
// (viewed, config_changed, consent_checked…). The store assigns Seq, At,
// PrevHash and Hash (values given are ignored). When ExchangeID is set and
// Flow and Key are not, they are taken from the exchange (ENotFound if
// there is none). An unknown Kind or an invalid field name is EInvalid.
func (db *DB) AppendAudit(ctx context.Context, ev refbridge.AuditEvent) error {
	if err := checkAudit(ev.Kind, ev.Fields); err != nil {
		return err
	}
	ev.Fields = slices.Clone(ev.Fields)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if ev.ExchangeID != "" && ev.Flow == "" && ev.Key == "" {
			var flow string
			err := tx.QueryRowContext(ctx, db.q.auditExchange, ev.ExchangeID).Scan(&flow, &ev.Key)
			if errors.Is(err, sql.ErrNoRows) {
				return refbridge.Errorf(refbridge.ENotFound, "exchange %s not found", ev.ExchangeID)
			}
			if err != nil {
				return err
			}
			ev.Flow = refbridge.Flow(flow)
		}
		return db.appendAudit(ctx, tx, db.nowMicros(), []refbridge.AuditEvent{ev})
	})
	return errStore("append audit", err)
}

// checkAudit validates what a caller puts into an event.
func checkAudit(kind refbridge.AuditKind, fields []string) error {
	if !kind.Valid() {
		return refbridge.Errorf(refbridge.EInvalid, "unknown audit kind %q", kind)
	}
	return checkAuditFields(fields)
}

// checkAuditFields checks that fields can be recorded as field names.
func checkAuditFields(fields []string) error {
	for i, f := range fields {
		if !refbridge.ValidAuditField(f) {
			return refbridge.Errorf(refbridge.EInvalid, "audit field name %d is empty, too long or has white space or control characters", i)
		}
	}
	return nil
}

// VerifyAudit walks the whole chain in seq order, recomputing each hash and
// checking seq continuity, each prev link, and that the chain ends at the
// anchor the store wrote with its last append. It returns how many events
// it found intact; a broken chain is EInvalid naming the FIRST broken
// event's seq, in the message and as the one problem's Field
// ("audit_events[SEQ]") with Rule AuditChanged, AuditDeleted,
// AuditReordered, AuditInserted, AuditRewritten or AuditAnchorMissing.
//
// What it cannot see: someone with write access to the database who
// rewrites the events from some point on AND the anchor consistently. The
// agencies' kept exports (each prints the final hash) are the anchor that
// lives outside the database: an earlier export's last (seq, hash) must
// still be in the chain.
func (db *DB) VerifyAudit(ctx context.Context) (int, error) {
	checked := 0
	last := refbridge.AuditEvent{Hash: refbridge.AuditGenesisHash}
	// The first page starts below any seq, so a row forged at 0 or below is seen.
	after := int64(math.MinInt64)
	for {
		evs, err := db.auditPage(ctx, after)
		if err != nil {
			return checked, errStore("verify audit", err)
		}
		for _, r := range evs {
			if err := checkLink(last, r); err != nil {
				return checked, err
			}
			checked++
			last = r.AuditEvent
		}
		after = last.Seq
		if len(evs) == verifyPage {
			continue
		}
		var tail int64
		var anchorSeq sql.NullInt64
		var anchorHash sql.NullString
		if err := db.sql.QueryRowContext(ctx, db.q.auditHead).Scan(&tail, &anchorSeq, &anchorHash); err != nil {
			return checked, errStore("verify audit", err)
		}
		if tail > last.Seq {
			continue // appended while we walked
		}
		if anchorSeq.Valid && anchorSeq.Int64 < last.Seq {
			// Events past the store's last append are not intact, however
			// well formed.
			checked = int(max(anchorSeq.Int64, 0))
		}
		return checked, checkAnchor(last, anchorSeq, anchorHash)
	}
}

// checkLink checks ev as the event that follows last.
func checkLink(last refbridge.AuditEvent, ev auditRow) error {
	want := last.Seq + 1
	switch {
	case ev.Seq > want:
		return auditBroken(want, AuditDeleted, "missing: the chain jumps from event %d to event %d (deleted)", last.Seq, ev.Seq)
	case ev.Seq < want:
		return auditBroken(ev.Seq, AuditInserted, "seq %d is not a position the store assigns (inserted)", ev.Seq)
	case ev.PrevHash != last.Hash:
		return auditBroken(ev.Seq, AuditReordered, "does not follow event %d: its prev_hash is not event %d's hash (events reordered, or one inserted or rewritten before it)", last.Seq, last.Seq)
	case ev.bad:
		return auditBroken(ev.Seq, AuditChanged, "its fields column is not a list of names (changed)")
	case ev.ComputeHash() != ev.Hash:
		return auditBroken(ev.Seq, AuditChanged, "its content does not match its hash (changed or forged)")
	}
	return nil
}

// checkAnchor checks that the chain ends where the store last appended.
func checkAnchor(last refbridge.AuditEvent, seq sql.NullInt64, hash sql.NullString) error {
	switch {
	case !seq.Valid:
		if last.Seq == 0 {
			return auditBroken(0, AuditAnchorMissing, "the audit anchor is missing")
		}
		return auditBroken(last.Seq, AuditAnchorMissing, "the audit anchor is missing, so the chain's end cannot be confirmed")
	case seq.Int64 > last.Seq:
		return auditBroken(last.Seq+1, AuditDeleted, "missing: the chain ends at event %d but the store appended up to event %d (deleted)", last.Seq, seq.Int64)
	case seq.Int64 < last.Seq:
		return auditBroken(seq.Int64+1, AuditInserted, "not appended by the store: its last append was event %d (inserted)", seq.Int64)
	case hash.String != last.Hash:
		return auditBroken(last.Seq, AuditRewritten, "its hash is not the one the store recorded when it appended it: the chain was rewritten (hashes recomputed) up to here")
	}
	return nil
}

func auditBroken(seq int64, rule, format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	return &refbridge.Error{
		Code:     refbridge.EInvalid,
		Message:  fmt.Sprintf("audit event %d: %s", seq, detail),
		Problems: []refbridge.Problem{{Field: fmt.Sprintf("audit_events[%d]", seq), Rule: rule, Detail: detail}},
	}
}

// auditRow is an event as read back; bad marks a fields column that is not
// a JSON list (it is then kept as one raw string, so nothing is hidden).
type auditRow struct {
	refbridge.AuditEvent
	bad bool
}

// auditPage reads up to verifyPage events after seq, in order.
func (db *DB) auditPage(ctx context.Context, after int64) ([]auditRow, error) {
	rows, err := db.sql.QueryContext(ctx, db.q.auditVerifyPage, after, verifyPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanAudit(s interface{ Scan(...any) error }) (auditRow, error) {
	var (
		r                auditRow
		at, override     int64
		kind, flow, flds string
	)
	ev := &r.AuditEvent
	if err := s.Scan(&ev.Seq, &at, &kind, &ev.ExchangeID, &flow, &ev.Key, &ev.Peer, &ev.Actor, &flds,
		&ev.Outcome, &ev.Reason, &override, &ev.PrevHash, &ev.Hash); err != nil {
		return r, err
	}
	ev.At, ev.Kind, ev.Flow, ev.Override = time.UnixMicro(at).UTC(), refbridge.AuditKind(kind), refbridge.Flow(flow), override != 0
	if flds != "" {
		if err := json.Unmarshal([]byte(flds), &ev.Fields); err != nil {
			ev.Fields, r.bad = []string{flds}, true
		}
	}
	return r, nil
}

// AuditFilter selects events for AuditEvents; zero fields match all.
type AuditFilter struct {
	// Since (inclusive) and Until (exclusive) bound At.
	Since, Until time.Time
	ExchangeID   string
	// Limit ≤ 0 means no limit.
	Limit, Offset int
}

func (f AuditFilter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) { conds = append(conds, cond); args = append(args, arg) }
	if !f.Since.IsZero() {
		add("at >= ?", f.Since.UTC().UnixMicro())
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until.UTC().UnixMicro())
	}
	if f.ExchangeID != "" {
		add("exchange_id = ?", f.ExchangeID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// AuditEvents returns the events matching f in chain (seq) order, and how
// many match in all (for paging). It does not verify them: VerifyAudit does.
func (db *DB) AuditEvents(ctx context.Context, f AuditFilter) ([]refbridge.AuditEvent, int, error) {
	where, args := f.where()
	var total int
	if err := db.sql.QueryRowContext(ctx, db.d.bind(db.q.auditCount+where), args...).Scan(&total); err != nil {
		return nil, 0, errStore("audit events", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = math.MaxInt32
	}
	rows, err := db.sql.QueryContext(ctx, db.d.bind(db.q.auditSelect+where+" ORDER BY seq LIMIT ? OFFSET ?"),
		append(args, limit, max(f.Offset, 0))...)
	if err != nil {
		return nil, 0, errStore("audit events", err)
	}
	defer rows.Close()
	var out []refbridge.AuditEvent
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, 0, errStore("audit events", err)
		}
		out = append(out, r.AuditEvent)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, errStore("audit events", err)
	}
	return out, total, nil
}

func encodeFields(fs []string) (string, error) {
	if len(fs) == 0 {
		return "", nil
	}
	b, err := json.Marshal(fs)
	return string(b), err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sourcePeer is the system a flow's message comes from; destPeer the one
// it goes to (DESIGN.md "The four flows").
func sourcePeer(f refbridge.Flow) string {
	switch f {
	case refbridge.FlowIntervention, refbridge.FlowReferralDecision:
		return "dtp"
	case refbridge.FlowServiceDecision, refbridge.FlowReferral:
		return "primero"
	}
	return ""
}

func destPeer(f refbridge.Flow) string {
	switch f {
	case refbridge.FlowIntervention, refbridge.FlowReferralDecision:
		return "primero"
	case refbridge.FlowServiceDecision, refbridge.FlowReferral:
		return "dtp"
	}
	return ""
}

// auditKind is the kind of event a change records: its AuditKind if set,
// else one derived from a change of state (none when the state stays, e.g.
// bookkeeping of a retry, or for states that share nothing).
func (c Change) auditKind(flow refbridge.Flow, from refbridge.ExchangeState) refbridge.AuditKind {
	if c.AuditKind != "" {
		return c.AuditKind
	}
	if from == c.To {
		return ""
	}
	switch c.To {
	case refbridge.StateHeld:
		return refbridge.AuditHeld
	case refbridge.StateDone:
		if flow == refbridge.FlowReferralDecision || flow == refbridge.FlowServiceDecision {
			return refbridge.AuditDecided
		}
		return refbridge.AuditDelivered
	case refbridge.StateDelivered:
		return refbridge.AuditDelivered
	case refbridge.StateFailed:
		return refbridge.AuditFailed
	case refbridge.StateDead:
		return refbridge.AuditDead
	}
	return ""
}

// changeEvent is the event a transition of exchange r records, if any.
func (c Change) changeEvent(r row) (refbridge.AuditEvent, bool) {
	flow := refbridge.Flow(r.flow)
	kind := c.auditKind(flow, refbridge.ExchangeState(r.state))
	if kind == "" {
		return refbridge.AuditEvent{}, false
	}
	return refbridge.AuditEvent{
		Kind: kind, ExchangeID: r.id, Flow: flow, Key: r.key, Peer: cmp.Or(c.Peer, destPeer(flow)),
		Actor: c.Actor, Fields: slices.Clone(c.Fields), Outcome: string(c.To), Reason: cmp.Or(c.auditReason, c.Reason), Override: c.Override,
	}, true
}

// purgedEvent records that the payload of exchange (id, flow, key), in
// state, was deleted.
func purgedEvent(id string, flow refbridge.Flow, key string, state refbridge.ExchangeState) refbridge.AuditEvent {
	return refbridge.AuditEvent{Kind: refbridge.AuditPurged, ExchangeID: id, Flow: flow, Key: key, Outcome: string(state)}
}

// intakeEvent records one stored (not duplicate) inbound item.
func intakeEvent(id string, it refbridge.Inbound, outcome refbridge.IntakeOutcome) refbridge.AuditEvent {
	ev := refbridge.AuditEvent{Kind: refbridge.AuditReceived, ExchangeID: id, Flow: it.Flow, Key: it.Key,
		Peer: sourcePeer(it.Flow), Outcome: string(outcome)}
	if outcome == refbridge.IntakeRejected {
		// The rules broken (codes), never the problems' details.
		var rules []string
		for _, p := range it.Problems {
			if p.Rule != "" && !slices.Contains(rules, p.Rule) {
				rules = append(rules, p.Rule)
			}
		}
		slices.Sort(rules)
		ev.Reason = strings.Join(rules, ",")
	}
	return ev
}
