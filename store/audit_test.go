package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the raw connection an attacker (or a careless DBA) would use

	"refbridge"
	"refbridge/store"
)

// auditFixture makes a store whose chain holds these 13 events, closes it
// and returns its path, keys and events:
//
//	1-4 received (IN-1, IN-2, IN-3, referral)   5 held (referral)
//	6 released   7 shared (fields, override)     8 delivered, 9 purged (IN-1)
//	10 dead (IN-2)   11 viewed (IN-2)            12 failed, 13 purged (IN-3)
func auditFixture(t *testing.T) (string, *store.Keyring, []refbridge.AuditEvent) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "refbridge.db")
	keys := newKeys(t)
	db, err := store.Open(ctx, store.Config{Path: path, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	in := func(flow refbridge.Flow, key string) refbridge.Inbound {
		return refbridge.Inbound{Flow: flow, Key: key, ContentHash: "h1", Payload: []byte(`{"name":"Testchild"}`)}
	}
	got, err := db.Receive(ctx, []refbridge.Inbound{in(refbridge.FlowIntervention, "IN-1"), in(refbridge.FlowIntervention, "IN-2"),
		in(refbridge.FlowIntervention, "IN-3"), in(refbridge.FlowReferral, "case-1#000000000001")})
	if err != nil {
		t.Fatal(err)
	}
	ref := got[3].ExchangeID
	steps := []struct {
		id string
		c  store.Change
	}{
		{ref, store.Change{To: refbridge.StateHeld, Reason: "consent_missing", Actor: "cp_worker_1"}},
		{ref, store.Change{To: refbridge.StateMapped, AuditKind: refbridge.AuditReleased, Actor: "cp_worker_1"}},
		{ref, store.Change{To: refbridge.StateDelivered, AuditKind: refbridge.AuditShared, Actor: "cp_supervisor",
			Fields: []string{"progres_interventionnumber", "sex", "age"}, Override: true}},
		{got[0].ExchangeID, store.Change{To: refbridge.StateDone}},
		{got[1].ExchangeID, store.Change{To: refbridge.StateDead, Reason: "retry_budget_spent"}},
	}
	for _, s := range steps {
		if _, err := db.Transition(ctx, s.id, s.c); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: got[1].ExchangeID, Actor: "focal_point"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Transition(ctx, got[2].ExchangeID, store.Change{To: refbridge.StateFailed, Reason: "validation"}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := db.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.VerifyAudit(ctx); err != nil || n != 13 || len(evs) != 13 || evs[6].Kind != refbridge.AuditShared {
		t.Fatalf("fixture: VerifyAudit = %d, %v with %d events; want 13 intact, event 7 shared", n, err, len(evs))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, keys, evs
}

// rawDB opens the store's file directly, as someone with write access to
// it would, and lifts the append-only triggers first.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetMaxOpenConns(1)
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return raw
}

func execRaw(t *testing.T, raw *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// writeEvent stores ev in row ev.Seq, inserting or replacing it.
func writeEvent(t *testing.T, raw *sql.DB, ev refbridge.AuditEvent) {
	t.Helper()
	fields := ""
	if len(ev.Fields) > 0 {
		b, _ := json.Marshal(ev.Fields)
		fields = string(b)
	}
	override := 0
	if ev.Override {
		override = 1
	}
	if _, err := raw.Exec(`INSERT OR REPLACE INTO audit_events (seq, at, kind, exchange_id, flow, idem_key, peer, actor, fields, outcome, reason, override, prev_hash, hash)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ev.Seq, ev.At.UnixMicro(), string(ev.Kind), ev.ExchangeID, string(ev.Flow), ev.Key,
		ev.Peer, ev.Actor, fields, ev.Outcome, ev.Reason, override, ev.PrevHash, ev.Hash); err != nil {
		t.Fatal(err)
	}
}

// rewriteFrom changes event k with edit and recomputes every hash from k
// on, so the table is a consistent chain again.
func rewriteFrom(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent, k int, edit func(*refbridge.AuditEvent)) []refbridge.AuditEvent {
	t.Helper()
	out := append([]refbridge.AuditEvent(nil), evs...)
	edit(&out[k-1])
	for i := k - 1; i < len(out); i++ {
		if i > 0 {
			out[i].PrevHash = out[i-1].Hash
		}
		out[i].Hash = out[i].ComputeHash()
		writeEvent(t, raw, out[i])
	}
	return out
}

// TestAuditTampering changes, deletes, reorders, inserts or rewrites audit
// rows in the SQLite file behind the store's back; reopened, VerifyAudit
// must fail naming the first broken event.
func TestAuditTampering(t *testing.T) {
	t.Parallel()

	const n = 13
	tests := []struct {
		name   string
		tamper func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent)
		// after, if set, runs on the reopened store before verifying (the
		// bridge kept working after the tampering).
		after    func(t *testing.T, db *store.DB)
		wantSeq  int64
		wantRule string
	}{
		{name: "ChangedActor", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET actor = 'someone_else' WHERE seq = 7`)
		}, wantSeq: 7, wantRule: store.AuditChanged},
		{name: "ChangedFields", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET fields = '["progres_interventionnumber","sex"]' WHERE seq = 7`)
		}, wantSeq: 7, wantRule: store.AuditChanged},
		{name: "ChangedOverride", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET override = 0 WHERE seq = 7`)
		}, wantSeq: 7, wantRule: store.AuditChanged},
		{name: "ChangedTime", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET at = at - 86400000000 WHERE seq = 3`)
		}, wantSeq: 3, wantRule: store.AuditChanged},
		{name: "ChangedKind", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET kind = 'consent_checked' WHERE seq = 5`)
		}, wantSeq: 5, wantRule: store.AuditChanged},
		{name: "FieldsNotAList", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET fields = 'sex,age' WHERE seq = 7`)
		}, wantSeq: 7, wantRule: store.AuditChanged},
		{name: "ChangedAndRehashedOneRow", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			ev := evs[6]
			ev.Actor = "someone_else"
			ev.Hash = ev.ComputeHash()
			writeEvent(t, raw, ev) // consistent itself, but event 8 still links to the old hash
		}, wantSeq: 8, wantRule: store.AuditReordered},
		{name: "DeletedMiddle", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `DELETE FROM audit_events WHERE seq = 7`)
		}, wantSeq: 7, wantRule: store.AuditDeleted},
		{name: "DeletedFirst", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `DELETE FROM audit_events WHERE seq = 1`)
		}, wantSeq: 1, wantRule: store.AuditDeleted},
		{name: "DeletedLast", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, fmt.Sprintf(`DELETE FROM audit_events WHERE seq = %d`, n))
		}, wantSeq: n, wantRule: store.AuditDeleted},
		{name: "DeletedAll", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `DELETE FROM audit_events`)
		}, wantSeq: 1, wantRule: store.AuditDeleted},
		{name: "Reordered", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET seq = -1 WHERE seq = 4`,
				`UPDATE audit_events SET seq = 4 WHERE seq = 9`,
				`UPDATE audit_events SET seq = 9 WHERE seq = -1`)
		}, wantSeq: 4, wantRule: store.AuditReordered},
		{name: "ReorderedNeighbours", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET seq = -1 WHERE seq = 10`,
				`UPDATE audit_events SET seq = 10 WHERE seq = 11`,
				`UPDATE audit_events SET seq = 11 WHERE seq = -1`)
		}, wantSeq: 10, wantRule: store.AuditReordered},
		{name: "ForgedAtEnd", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			// Well-formed: right seq, prev link and hash. Only the anchor knows.
			last := evs[n-1]
			forged := refbridge.AuditEvent{Seq: n + 1, At: last.At, Kind: refbridge.AuditShared, ExchangeID: evs[3].ExchangeID,
				Flow: evs[3].Flow, Key: evs[3].Key, Peer: "dtp", Actor: "cp_supervisor", Fields: []string{"sex"}, Outcome: "delivered", PrevHash: last.Hash}
			forged.Hash = forged.ComputeHash()
			writeEvent(t, raw, forged)
		}, wantSeq: n + 1, wantRule: store.AuditInserted},
		{name: "ForgedAtEndBadHash", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			writeEvent(t, raw, refbridge.AuditEvent{Seq: n + 1, At: evs[n-1].At, Kind: refbridge.AuditShared, PrevHash: evs[n-1].Hash, Hash: strings.Repeat("ab", 32)})
		}, wantSeq: n + 1, wantRule: store.AuditChanged},
		{name: "ForgedInMiddle", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			// Make room at 5 and insert a well-formed event there: event 5
			// itself is consistent, so the break shows at the next one, whose
			// prev link names it ("does not follow event 5").
			execRaw(t, raw, `UPDATE audit_events SET seq = -seq - 1 WHERE seq >= 5`, `UPDATE audit_events SET seq = -seq WHERE seq < 0`)
			forged := refbridge.AuditEvent{Seq: 5, At: evs[4].At, Kind: refbridge.AuditConsentChecked, ExchangeID: evs[3].ExchangeID,
				Flow: evs[3].Flow, Key: evs[3].Key, Actor: "cp_supervisor", Outcome: "mapped", PrevHash: evs[3].Hash}
			forged.Hash = forged.ComputeHash()
			writeEvent(t, raw, forged)
		}, wantSeq: 6, wantRule: store.AuditReordered},
		{name: "NegativeSeq", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			ev := evs[0]
			ev.Seq = -5
			writeEvent(t, raw, ev)
		}, wantSeq: -5, wantRule: store.AuditInserted},
		{name: "RewrittenConsistentlyFromRow", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			rewriteFrom(t, raw, evs, 7, func(ev *refbridge.AuditEvent) { ev.Actor = "someone_else" })
		}, wantSeq: n, wantRule: store.AuditRewritten},
		{name: "RewrittenThenBridgeWorkedOn", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			rewriteFrom(t, raw, evs, 7, func(ev *refbridge.AuditEvent) { ev.Actor = "someone_else" })
		}, after: func(t *testing.T, db *store.DB) {
			// New appends chain from the anchor, so they do not launder the rewrite.
			if err := db.AppendAudit(context.Background(), refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Actor: "admin"}); err != nil {
				t.Fatal(err)
			}
		}, wantSeq: n + 1, wantRule: store.AuditReordered},
		{name: "ChangedThenBridgeWorkedOn", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `UPDATE audit_events SET actor = 'someone_else' WHERE seq = 7`)
		}, after: func(t *testing.T, db *store.DB) {
			if err := db.AppendAudit(context.Background(), refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Actor: "admin"}); err != nil {
				t.Fatal(err)
			}
		}, wantSeq: 7, wantRule: store.AuditChanged},
		{name: "ForgedAtEndThenBridgeWorkedOn", tamper: func(t *testing.T, raw *sql.DB, evs []refbridge.AuditEvent) {
			last := evs[n-1]
			forged := refbridge.AuditEvent{Seq: n + 1, At: last.At, Kind: refbridge.AuditViewed, PrevHash: last.Hash}
			forged.Hash = forged.ComputeHash()
			writeEvent(t, raw, forged)
		}, after: func(t *testing.T, db *store.DB) {
			// The store appends after the forged row (no collision, work goes
			// on) but links to its own last event, so the next link breaks.
			if err := db.AppendAudit(context.Background(), refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Actor: "admin"}); err != nil {
				t.Fatal(err)
			}
		}, wantSeq: n + 2, wantRule: store.AuditReordered},
		{name: "AnchorDeleted", tamper: func(t *testing.T, raw *sql.DB, _ []refbridge.AuditEvent) {
			execRaw(t, raw, `DELETE FROM audit_anchor`)
		}, wantSeq: n, wantRule: store.AuditAnchorMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path, keys, evs := auditFixture(t)
			raw := rawDB(t, path)
			tt.tamper(t, raw, evs)
			if err := raw.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := store.Open(ctx, store.Config{Path: path, Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if tt.after != nil {
				tt.after(t, db)
			}
			checked, err := db.VerifyAudit(ctx)
			if refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
				t.Fatalf("VerifyAudit = %d, %v; want the chain reported broken (invalid)", checked, err)
			}
			ps := refbridge.ErrorProblems(err)
			wantField := fmt.Sprintf("audit_events[%d]", tt.wantSeq)
			if len(ps) != 1 || ps[0].Field != wantField || ps[0].Rule != tt.wantRule {
				t.Fatalf("VerifyAudit: %v with problems %+v; want one problem %s/%s", err, ps, wantField, tt.wantRule)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("audit event %d:", tt.wantSeq)) {
				t.Fatalf("error %q does not name event %d", err, tt.wantSeq)
			}
			if tt.wantSeq > 0 && int64(checked) >= tt.wantSeq && tt.wantRule != store.AuditRewritten && tt.wantRule != store.AuditAnchorMissing {
				t.Fatalf("checked %d events as intact, but event %d is broken", checked, tt.wantSeq)
			}
		})
	}
}

// TestAuditRewriteWithAnchorNeedsExternalAnchor documents the limit: with
// full write access, rewriting the events AND the anchor consistently
// passes VerifyAudit. What catches it is a hash kept outside the database:
// the last (seq, hash) of an earlier `audit export`.
func TestAuditRewriteWithAnchorNeedsExternalAnchor(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	path, keys, evs := auditFixture(t)
	kept := evs[len(evs)-1] // what the agencies' last export printed
	raw := rawDB(t, path)
	rewritten := rewriteFrom(t, raw, evs, 7, func(ev *refbridge.AuditEvent) { ev.Actor = "someone_else" })
	head := rewritten[len(rewritten)-1]
	execRaw(t, raw, fmt.Sprintf(`UPDATE audit_anchor SET seq = %d, hash = '%s'`, head.Seq, head.Hash))
	raw.Close()

	db, err := store.Open(ctx, store.Config{Path: path, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.VerifyAudit(ctx); err != nil || n != len(evs) {
		t.Fatalf("VerifyAudit = %d, %v: a full rewrite with the anchor is expected to pass (see docs/decisions.md)", n, err)
	}
	now, _, err := db.AuditEvents(ctx, store.AuditFilter{Offset: int(kept.Seq) - 1, Limit: 1})
	if err != nil || len(now) != 1 {
		t.Fatalf("event %d: %v, %v", kept.Seq, now, err)
	}
	if now[0].Hash == kept.Hash {
		t.Fatal("the kept export hash still matches: the external anchor would not catch the rewrite")
	}
}
