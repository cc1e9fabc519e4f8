package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/riverqueue/river/rivertype"

	"refbridge"
	"refbridge/store"
)

// testRetryResumesWhereItDied: a dead exchange remembers the state, reason
// and problems it died with; Retry puts all three back with a fresh budget
// and a job, audited with the focal point as actor; Discard ends it.
func testRetryResumesWhereItDied(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	db := s.db
	ids := receive(t, db, inbound("IN-1", "h1"), inbound("IN-2", "h1"))
	id, other := ids[0].ExchangeID, ids[1].ExchangeID
	problems := []refbridge.Problem{{Field: "individuals.sex", Rule: "unknown_code", Detail: "code not in the table"}}
	// received → rejected (with problems) → two failed attempts → dead.
	steps := []store.Change{
		{To: refbridge.StateRejected, Reason: "invalid_input", Problems: problems},
		{To: refbridge.StateRejected, Reason: "invalid_input", Problems: problems, Attempted: true, LastError: refbridge.ETransient},
		{To: refbridge.StateDead, Reason: "retry_budget_spent", Attempted: true, LastError: refbridge.ETransient,
			Problems: []refbridge.Problem{{Field: "dtp", Rule: "transient"}}},
	}
	for i, c := range steps {
		if _, err := db.Transition(ctx, id, c); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	dead := get(t, db, id)
	if dead.State != refbridge.StateDead || dead.DeadFrom != refbridge.StateRejected || dead.Attempts != 2 || dead.Payload == nil {
		t.Fatalf("dead exchange = state %s from %q, %d attempts, payload %v", dead.State, dead.DeadFrom, dead.Attempts, dead.Payload != nil)
	}

	for _, tc := range []struct {
		name, id, actor, reason string
		code                    refbridge.ErrorCode
	}{
		{"NoActor", id, "", "peer_fixed", refbridge.EInvalid},
		{"NoReason", id, "fp", "", refbridge.EInvalid},
		{"FreeTextReason", id, "fp", "called Fatuma's mother", refbridge.EInvalid},
		{"NotDead", other, "fp", "peer_fixed", refbridge.EConflict},
		{"Unknown", "0190aaaa-0000-7000-8000-000000000000", "fp", "peer_fixed", refbridge.ENotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Retry(ctx, tc.id, tc.actor, tc.reason)
			wantCode(t, err, tc.code)
			_, err = db.Discard(ctx, tc.id, tc.actor, tc.reason)
			wantCode(t, err, tc.code)
		})
	}

	// Nothing is working the queue: the retry's job stays available.
	insp := inspector(t, db)
	before := len(jobsByExchange(t, insp, rivertype.JobStateAvailable)[id])
	ex, err := db.Retry(ctx, id, "fp.gambella", "peer_fixed")
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != refbridge.StateRejected || ex.Reason != "invalid_input" || !slices.Equal(ex.Problems, problems) ||
		ex.Attempts != 0 || ex.DeadFrom != "" || ex.LastError != refbridge.ETransient {
		t.Fatalf("retried exchange = %+v", ex)
	}
	if got := len(jobsByExchange(t, insp, rivertype.JobStateAvailable)[id]); got != 1 || before != 1 {
		// The intake job is still available (no worker), so River keeps one.
		t.Fatalf("available jobs for the exchange: %d before, %d after; want 1 and 1", before, got)
	}
	_, err = db.Retry(ctx, id, "fp.other", "peer_fixed")
	wantCode(t, err, refbridge.EConflict) // a second press finds it no longer dead

	evs := auditOf(t, db, id)
	last := evs[len(evs)-1]
	if last.Kind != refbridge.AuditRetried || last.Actor != "fp.gambella" || last.Reason != "peer_fixed" || last.Outcome != string(refbridge.StateRejected) {
		t.Fatalf("retry event = %+v", last)
	}

	// Dead again, then discarded: failed, purged, audited.
	if _, err := db.Transition(ctx, id, store.Change{To: refbridge.StateDead, Reason: "retry_budget_spent"}); err != nil {
		t.Fatal(err)
	}
	if ex, err = db.Discard(ctx, id, "fp.gambella", "duplicate"); err != nil {
		t.Fatal(err)
	}
	if ex.State != refbridge.StateFailed || ex.Reason != store.ReasonDiscarded || ex.DeadFrom != "" {
		t.Fatalf("discarded exchange = %+v", ex)
	}
	if got := get(t, db, id); got.Payload != nil || got.PurgedAt.IsZero() {
		t.Fatal("a discarded exchange kept its payload")
	}
	evs = auditOf(t, db, id)
	kinds := []refbridge.AuditKind{}
	for _, e := range evs[len(evs)-3:] {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []refbridge.AuditKind{refbridge.AuditDead, refbridge.AuditDiscarded, refbridge.AuditPurged}) {
		t.Fatalf("last events %v, want dead, discarded, purged", kinds)
	}
	if d := evs[len(evs)-2]; d.Actor != "fp.gambella" || d.Reason != "duplicate" {
		t.Fatalf("discard event = %+v", d)
	}
	verifyIntact(t, db, len(allAudit(t, db)))

	// New content for a dead exchange re-opens it and forgets where it died.
	if _, err := db.Transition(ctx, other, store.Change{To: refbridge.StateDead, Reason: "retry_budget_spent"}); err != nil {
		t.Fatal(err)
	}
	receive(t, db, inbound("IN-2", "h2"))
	if ex := get(t, db, other); ex.State != refbridge.StateReceived || ex.DeadFrom != "" {
		t.Fatalf("updated dead exchange = %s from %q", ex.State, ex.DeadFrom)
	}
	_, err = db.Retry(ctx, other, "fp", "peer_fixed")
	wantCode(t, err, refbridge.EConflict)
}
