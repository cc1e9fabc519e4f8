package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/store"
)

// auditOf returns the events recorded for one exchange, in chain order.
func auditOf(t *testing.T, db *store.DB, id string) []refbridge.AuditEvent {
	t.Helper()
	evs, total, err := db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: id})
	if err != nil {
		t.Fatalf("AuditEvents(%s): %v", id, err)
	}
	if total != len(evs) {
		t.Fatalf("AuditEvents(%s): total %d but %d events", id, total, len(evs))
	}
	return evs
}

// allAudit returns every event, in chain order.
func allAudit(t *testing.T, db *store.DB) []refbridge.AuditEvent {
	t.Helper()
	evs, _, err := db.AuditEvents(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatalf("AuditEvents: %v", err)
	}
	return evs
}

// verifyIntact checks the chain verifies with want events (want < 0: any).
func verifyIntact(t *testing.T, db *store.DB, want int) {
	t.Helper()
	n, err := db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("VerifyAudit: %v (after %d intact events)", err, n)
	}
	if want >= 0 && n != want {
		t.Fatalf("VerifyAudit checked %d events, want %d", n, want)
	}
}

// wantEvent is the part of an event a test states; Peer "" is not checked
// when anyPeer is set.
type wantEvent struct {
	kind     refbridge.AuditKind
	outcome  string
	peer     string
	actor    string
	fields   []string
	reason   string
	override bool
}

func (w wantEvent) String() string {
	return fmt.Sprintf("%s/%s peer=%q actor=%q fields=%v reason=%q override=%v", w.kind, w.outcome, w.peer, w.actor, w.fields, w.reason, w.override)
}

func gotEvent(ev refbridge.AuditEvent) wantEvent {
	return wantEvent{kind: ev.Kind, outcome: ev.Outcome, peer: ev.Peer, actor: ev.Actor, fields: ev.Fields, reason: ev.Reason, override: ev.Override}
}

func sameEvents(got []refbridge.AuditEvent, want []wantEvent) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := gotEvent(got[i]), want[i]
		if g.kind != w.kind || g.outcome != w.outcome || g.peer != w.peer || g.actor != w.actor ||
			!slices.Equal(g.fields, w.fields) || g.reason != w.reason || g.override != w.override {
			return false
		}
	}
	return true
}

func describe(evs []refbridge.AuditEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = gotEvent(ev).String()
	}
	return out
}

// flowItem is inbound(key, hash) in another flow.
func flowItem(flow refbridge.Flow, key, hash string) refbridge.Inbound {
	in := inbound(key, hash)
	in.Flow = flow
	return in
}

func testAuditWrittenWithChanges(t *testing.T, open Opener) {
	ctx := context.Background()
	rejected := func(key, hash string) refbridge.Inbound {
		in := inbound(key, hash)
		in.State = refbridge.StateRejected
		in.Problems = []refbridge.Problem{
			{Field: "interventions[0].sex", Rule: "unknown_code", Detail: "not in the code table"},
			{Field: "interventions[0].dob", Rule: "required", Detail: "missing"},
			{Field: "interventions[0].sex2", Rule: "unknown_code", Detail: "not in the code table"},
		}
		return in
	}
	shared := []string{"progres_interventionnumber", "sex", "age"}
	received := func(outcome refbridge.IntakeOutcome, peer string) wantEvent {
		return wantEvent{kind: refbridge.AuditReceived, outcome: string(outcome), peer: peer}
	}
	tests := []struct {
		name string
		// items are received in turn (all on one exchange), then changes applied.
		items   []refbridge.Inbound
		changes []store.Change
		want    []wantEvent
	}{
		{name: "ReceivedAccepted", items: []refbridge.Inbound{inbound("IN-1", "h1")},
			want: []wantEvent{received(refbridge.IntakeAccepted, "dtp")}},
		{name: "DuplicateWritesNothing", items: []refbridge.Inbound{inbound("IN-1", "h1"), inbound("IN-1", "h1")},
			want: []wantEvent{received(refbridge.IntakeAccepted, "dtp")}},
		{name: "UpdatedAndRejected", items: []refbridge.Inbound{inbound("IN-1", "h1"), inbound("IN-1", "h2"), rejected("IN-1", "h3")},
			want: []wantEvent{received(refbridge.IntakeAccepted, "dtp"), received(refbridge.IntakeUpdated, "dtp"),
				{kind: refbridge.AuditReceived, outcome: "rejected", peer: "dtp", reason: "required,unknown_code"}}},
		{name: "PolledFromPrimero", items: []refbridge.Inbound{flowItem(refbridge.FlowReferral, "case-1#000000000001", "h1")},
			want: []wantEvent{received(refbridge.IntakeAccepted, "primero")}},
		{name: "MappedWritesNothing", items: []refbridge.Inbound{inbound("IN-1", "h1")},
			changes: []store.Change{{To: refbridge.StateMapped}},
			want:    []wantEvent{received(refbridge.IntakeAccepted, "dtp")}},
		{name: "HeldThenReleased", items: []refbridge.Inbound{flowItem(refbridge.FlowReferral, "case-1#000000000001", "h1")},
			changes: []store.Change{
				{To: refbridge.StateHeld, Reason: "consent_missing", Actor: "cp_worker_1"},
				{To: refbridge.StateReceived, AuditKind: refbridge.AuditReleased, Actor: "cp_worker_1", Reason: "consent_given"},
			},
			want: []wantEvent{received(refbridge.IntakeAccepted, "primero"),
				{kind: refbridge.AuditHeld, outcome: "held", peer: "dtp", actor: "cp_worker_1", reason: "consent_missing"},
				{kind: refbridge.AuditReleased, outcome: "received", peer: "dtp", actor: "cp_worker_1", reason: "consent_given"}}},
		{name: "SharedWithOverrideThenDelivered", items: []refbridge.Inbound{flowItem(refbridge.FlowReferral, "case-1#000000000001", "h1")},
			changes: []store.Change{
				{To: refbridge.StateMapped, AuditKind: refbridge.AuditConsentChecked, Actor: "cp_supervisor", Override: true, Reason: "consent_override"},
				{To: refbridge.StateDelivered, AuditKind: refbridge.AuditShared, Actor: "cp_supervisor", Fields: shared, Override: true},
				{To: refbridge.StateDelivered, Reason: "awaiting_decision"}, // same state: bookkeeping, no event
			},
			want: []wantEvent{received(refbridge.IntakeAccepted, "primero"),
				{kind: refbridge.AuditConsentChecked, outcome: "mapped", peer: "dtp", actor: "cp_supervisor", override: true, reason: "consent_override"},
				{kind: refbridge.AuditShared, outcome: "delivered", peer: "dtp", actor: "cp_supervisor", fields: shared, override: true}}},
		{name: "DeliveredDefaultThenDonePurged", items: []refbridge.Inbound{inbound("IN-1", "h1")},
			changes: []store.Change{
				{To: refbridge.StateDelivered, Actor: "progres_requester_7", Fields: shared},
				{To: refbridge.StateDone},
			},
			want: []wantEvent{received(refbridge.IntakeAccepted, "dtp"),
				{kind: refbridge.AuditDelivered, outcome: "delivered", peer: "primero", actor: "progres_requester_7", fields: shared},
				{kind: refbridge.AuditDelivered, outcome: "done", peer: "primero"},
				{kind: refbridge.AuditPurged, outcome: "done"}}},
		{name: "ReferralDecisionDoneIsDecided", items: []refbridge.Inbound{flowItem(refbridge.FlowReferralDecision, "case-1#000000000001", "h1")},
			changes: []store.Change{{To: refbridge.StateDone, Actor: "progres_user_3"}},
			want: []wantEvent{received(refbridge.IntakeAccepted, "dtp"),
				{kind: refbridge.AuditDecided, outcome: "done", peer: "primero", actor: "progres_user_3"},
				{kind: refbridge.AuditPurged, outcome: "done"}}},
		{name: "ServiceDecisionDoneIsDecided", items: []refbridge.Inbound{flowItem(refbridge.FlowServiceDecision, "IN-1", "h1")},
			changes: []store.Change{{To: refbridge.StateDone, Peer: "dtp-test"}},
			want: []wantEvent{received(refbridge.IntakeAccepted, "primero"),
				{kind: refbridge.AuditDecided, outcome: "done", peer: "dtp-test"},
				{kind: refbridge.AuditPurged, outcome: "done"}}},
		{name: "RejectedThenFailed", items: []refbridge.Inbound{rejected("IN-1", "h1")},
			changes: []store.Change{{To: refbridge.StateFailed, Reason: "validation"}},
			want: []wantEvent{{kind: refbridge.AuditReceived, outcome: "rejected", peer: "dtp", reason: "required,unknown_code"},
				{kind: refbridge.AuditFailed, outcome: "failed", peer: "primero", reason: "validation"},
				{kind: refbridge.AuditPurged, outcome: "failed"}}},
		{name: "DeadRetriedDiscarded", items: []refbridge.Inbound{inbound("IN-1", "h1")},
			changes: []store.Change{
				{To: refbridge.StateMapped, Attempted: true, LastError: refbridge.ETransient},
				{To: refbridge.StateMapped, Attempted: true, LastError: refbridge.ETransient}, // retry bookkeeping
				{To: refbridge.StateDead, Reason: "retry_budget_spent"},
				{To: refbridge.StateMapped, AuditKind: refbridge.AuditRetried, Actor: "focal_point"},
				{To: refbridge.StateDead, Reason: "validation"},
				{To: refbridge.StateFailed, AuditKind: refbridge.AuditDiscarded, Actor: "focal_point", Reason: "discarded"},
			},
			want: []wantEvent{received(refbridge.IntakeAccepted, "dtp"),
				{kind: refbridge.AuditDead, outcome: "dead", peer: "primero", reason: "retry_budget_spent"},
				{kind: refbridge.AuditRetried, outcome: "mapped", peer: "primero", actor: "focal_point"},
				{kind: refbridge.AuditDead, outcome: "dead", peer: "primero", reason: "validation"},
				{kind: refbridge.AuditDiscarded, outcome: "failed", peer: "primero", actor: "focal_point", reason: "discarded"},
				{kind: refbridge.AuditPurged, outcome: "failed"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			var id string
			for _, it := range tt.items {
				s.clock.Add(time.Second)
				id = receive(t, s.db, it)[0].ExchangeID
			}
			for i, c := range tt.changes {
				s.clock.Add(time.Second)
				if _, err := s.db.Transition(ctx, id, c); err != nil {
					t.Fatalf("change %d: %v", i, err)
				}
			}
			got := auditOf(t, s.db, id)
			if !sameEvents(got, tt.want) {
				t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(describe(got), "\n  "), strings.Join(wantStrings(tt.want), "\n  "))
			}
			for _, ev := range got {
				if ev.ExchangeID != id || ev.Flow != tt.items[0].Flow || ev.Key != tt.items[0].Key {
					t.Fatalf("event %d names exchange %s %s/%s, want %s %s/%s", ev.Seq, ev.ExchangeID, ev.Flow, ev.Key, id, tt.items[0].Flow, tt.items[0].Key)
				}
			}
			verifyIntact(t, s.db, len(tt.want))
		})
	}
}

func wantStrings(ws []wantEvent) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.String()
	}
	return out
}

// testAuditRolledBackWithChange: an event commits with its change or not at all.
func testAuditRolledBackWithChange(t *testing.T, open Opener) {
	ctx := context.Background()
	tests := []struct {
		name     string
		act      func(s *setup, id string) error
		wantCode refbridge.ErrorCode
	}{
		{"ConflictingTransition", func(s *setup, id string) error {
			_, err := s.db.Transition(ctx, id, store.Change{From: []refbridge.ExchangeState{refbridge.StateMapped}, To: refbridge.StateDelivered, Fields: []string{"sex"}})
			return err
		}, refbridge.EConflict},
		{"StaleContent", func(s *setup, id string) error {
			_, err := s.db.Transition(ctx, id, store.Change{IfContentHash: "stale", To: refbridge.StateHeld})
			return err
		}, refbridge.EConflict},
		{"UnknownAuditKind", func(s *setup, id string) error {
			_, err := s.db.Transition(ctx, id, store.Change{To: refbridge.StateHeld, AuditKind: "leaked"})
			return err
		}, refbridge.EInvalid},
		{"FieldWithControlCharacter", func(s *setup, id string) error {
			_, err := s.db.Transition(ctx, id, store.Change{To: refbridge.StateDelivered, Fields: []string{"sex\x1fage"}})
			return err
		}, refbridge.EInvalid},
		{"InvalidBatch", func(s *setup, id string) error {
			_, err := s.db.Receive(ctx, []refbridge.Inbound{inbound("IN-2", "h1"), {Flow: "F9", Key: "k", ContentHash: "h"}})
			return err
		}, refbridge.EInvalid},
		{"CancelledTransition", func(s *setup, id string) error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := s.db.Transition(cctx, id, store.Change{To: refbridge.StateHeld})
			return err
		}, refbridge.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
			before := get(t, s.db, id)
			wantCode(t, tt.act(s, id), tt.wantCode)
			if after := get(t, s.db, id); after.State != before.State {
				t.Fatalf("state %s → %s after a failed change", before.State, after.State)
			}
			if evs := allAudit(t, s.db); len(evs) != 1 || evs[0].Kind != refbridge.AuditReceived {
				t.Fatalf("events after a failed change: %v, want only the intake's", describe(evs))
			}
			verifyIntact(t, s.db, 1)
		})
	}
}

func testAuditChainVerifies(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	t0 := s.clock.Now()
	// Empty chain: intact, nothing checked.
	verifyIntact(t, s.db, 0)

	ids := make([]string, 3)
	for i := range ids {
		s.clock.Add(time.Minute)
		ids[i] = receive(t, s.db, inbound(fmt.Sprintf("IN-%d", i), "h1"))[0].ExchangeID // seq 1, 2, 3
	}
	s.clock.Add(time.Minute)
	if _, err := s.db.Transition(ctx, ids[0], store.Change{To: refbridge.StateDone}); err != nil { // seq 4, 5
		t.Fatal(err)
	}
	s.clock.Add(time.Minute)
	// Caller-supplied chain values are ignored; flow and key come from the exchange.
	if err := s.db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: ids[1], Actor: "focal_point",
		Seq: 99, Hash: "forged", PrevHash: "forged", At: time.Unix(0, 0)}); err != nil { // seq 6
		t.Fatal(err)
	}
	s.clock.Add(time.Minute)
	if err := s.db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Actor: "admin", Reason: "profile_reloaded"}); err != nil { // seq 7
		t.Fatal(err)
	}

	all := allAudit(t, s.db)
	if len(all) != 7 {
		t.Fatalf("%d events, want 7: %v", len(all), describe(all))
	}
	prev := refbridge.AuditGenesisHash
	for i, ev := range all {
		if ev.Seq != int64(i+1) || ev.PrevHash != prev || ev.Hash != ev.ComputeHash() || len(ev.Hash) != 64 {
			t.Fatalf("event %d: seq %d prev %s hash %s: want seq %d linked to %s with its own hash", i, ev.Seq, ev.PrevHash, ev.Hash, i+1, prev)
		}
		if ev.At.Location() != time.UTC || ev.At.Before(t0) {
			t.Fatalf("event %d at %v: want UTC store time", ev.Seq, ev.At)
		}
		prev = ev.Hash
	}
	if v := all[5]; v.Kind != refbridge.AuditViewed || v.Flow != refbridge.FlowIntervention || v.Key != "IN-1" || v.Actor != "focal_point" || !v.At.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("viewed event = %+v", v)
	}
	verifyIntact(t, s.db, 7)

	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	tests := []struct {
		name      string
		f         store.AuditFilter
		wantSeq   []int64
		wantTotal int
	}{
		{"All", store.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7}, 7},
		{"Exchange", store.AuditFilter{ExchangeID: ids[0]}, []int64{1, 4, 5}, 3},
		{"Since", store.AuditFilter{Since: at(4)}, []int64{4, 5, 6, 7}, 4},
		{"Until", store.AuditFilter{Until: at(2)}, []int64{1}, 1},
		{"SinceUntil", store.AuditFilter{Since: at(2), Until: at(5)}, []int64{2, 3, 4, 5}, 4},
		{"LimitOffset", store.AuditFilter{Limit: 2, Offset: 2}, []int64{3, 4}, 7},
		{"OffsetPastEnd", store.AuditFilter{Offset: 9}, nil, 7},
		{"NoMatch", store.AuditFilter{ExchangeID: "nope"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, total, err := s.db.AuditEvents(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, ev := range got {
				seqs = append(seqs, ev.Seq)
			}
			if !slices.Equal(seqs, tt.wantSeq) || total != tt.wantTotal {
				t.Fatalf("AuditEvents = %v (total %d), want %v (total %d)", seqs, total, tt.wantSeq, tt.wantTotal)
			}
		})
	}
}

func testAuditAppendValidation(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	tests := []struct {
		name     string
		ev       refbridge.AuditEvent
		wantCode refbridge.ErrorCode
	}{
		{"Valid", refbridge.AuditEvent{Kind: refbridge.AuditConfigChanged, Fields: []string{"interventions[0].sex", "consent_for_services"}}, ""},
		{"NoKind", refbridge.AuditEvent{}, refbridge.EInvalid},
		{"UnknownKind", refbridge.AuditEvent{Kind: "exfiltrated"}, refbridge.EInvalid},
		{"EmptyField", refbridge.AuditEvent{Kind: refbridge.AuditViewed, Fields: []string{""}}, refbridge.EInvalid},
		{"FieldWithSeparator", refbridge.AuditEvent{Kind: refbridge.AuditViewed, Fields: []string{"a\x1fb"}}, refbridge.EInvalid},
		{"FieldWithSpace", refbridge.AuditEvent{Kind: refbridge.AuditViewed, Fields: []string{"first name"}}, refbridge.EInvalid},
		{"FieldTooLong", refbridge.AuditEvent{Kind: refbridge.AuditViewed, Fields: []string{strings.Repeat("x", 257)}}, refbridge.EInvalid},
		{"UnknownExchange", refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: "0190aaaa-0000-7000-8000-000000000000"}, refbridge.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantCode(t, s.db.AppendAudit(ctx, tt.ev), tt.wantCode)
		})
	}
	t.Cleanup(func() {
		// Only the valid event was recorded.
		if evs := allAudit(t, s.db); len(evs) != 1 {
			t.Errorf("%d events recorded, want only the valid one", len(evs))
		}
	})
}

func testAuditPurgeRecorded(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open, withRetention(time.Hour))
	got := receive(t, s.db, inbound("IN-1", "h1"), inbound("IN-2", "h1"), inbound("IN-3", "h1"))
	done, failed, open_ := got[0].ExchangeID, got[1].ExchangeID, got[2].ExchangeID
	for id, to := range map[string]refbridge.ExchangeState{done: refbridge.StateDone, failed: refbridge.StateFailed} {
		if _, err := s.db.Transition(ctx, id, store.Change{To: to}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(allAudit(t, s.db)); n != 5 {
		t.Fatalf("%d events before purge, want 3 received + 2 terminal (no purge yet)", n)
	}
	s.clock.Add(2 * time.Hour)
	if n, err := s.db.Purge(ctx); err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if n, err := s.db.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("second Purge = %d, %v; want 0 (and no events)", n, err)
	}
	for id, outcome := range map[string]string{done: "done", failed: "failed"} {
		evs := auditOf(t, s.db, id)
		last := evs[len(evs)-1]
		if len(evs) != 3 || last.Kind != refbridge.AuditPurged || last.Outcome != outcome || !last.At.Equal(s.clock.Now()) {
			t.Fatalf("events of %s = %v, want received, %s, purged", outcome, describe(evs), outcome)
		}
		if ex := get(t, s.db, id); ex.Payload != nil {
			t.Fatal("payload not purged")
		}
	}
	if evs := auditOf(t, s.db, open_); len(evs) != 1 {
		t.Fatalf("open exchange has events %v, want only received", describe(evs))
	}
	verifyIntact(t, s.db, 7)

	// The events outlive the payloads, and the chain survives a reopen and
	// goes on from where it was.
	path := s.db.Path()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	cfg.Path = path
	db := mustOpen(t, open, cfg)
	verifyIntact(t, db, 7)
	if _, err := db.Transition(ctx, open_, store.Change{To: refbridge.StateHeld, Reason: "consent_missing"}); err != nil {
		t.Fatal(err)
	}
	verifyIntact(t, db, 8)
}

// testAuditConcurrentChain: appends from many goroutines (intake,
// transitions, conflicting transitions, AppendAudit) still make one
// unbroken chain with every committed event in it.
func testAuditConcurrentChain(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	const workers = 12
	contested := receive(t, s.db, flowItem(refbridge.FlowReferral, "case-0#000000000000", "h1"))[0].ExchangeID
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			id, err := s.db.Receive(ctx, []refbridge.Inbound{inbound(fmt.Sprintf("IN-%02d", i), "h1")})
			if err != nil {
				t.Error(err)
				return
			}
			for _, c := range []store.Change{
				{To: refbridge.StateHeld, Reason: "consent_missing"},
				{To: refbridge.StateMapped, AuditKind: refbridge.AuditReleased},
				{To: refbridge.StateDelivered, AuditKind: refbridge.AuditShared, Fields: []string{"sex"}, Actor: fmt.Sprintf("user_%d", i)},
				{To: refbridge.StateDone},
			} {
				if _, err := s.db.Transition(ctx, id[0].ExchangeID, c); err != nil {
					t.Error(err)
					return
				}
			}
			if err := s.db.AppendAudit(ctx, refbridge.AuditEvent{Kind: refbridge.AuditViewed, ExchangeID: id[0].ExchangeID}); err != nil {
				t.Error(err)
			}
			// Only one worker moves the contested exchange; losers record nothing.
			_, err = s.db.Transition(ctx, contested, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived},
				To: refbridge.StateHeld, Reason: "consent_missing"})
			mu.Lock()
			defer mu.Unlock()
			switch refbridge.ErrorCodeOf(err) {
			case "":
				wins++
			case refbridge.EConflict:
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d workers moved the contested exchange, want 1", wins)
	}
	// Per worker: received, held, released, shared, delivered, purged, viewed = 7;
	// plus the contested exchange's received and held.
	want := workers*7 + 2
	verifyIntact(t, s.db, want)
	all := allAudit(t, s.db)
	for i, ev := range all {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	if evs := auditOf(t, s.db, contested); len(evs) != 2 {
		t.Fatalf("contested exchange events = %v, want received and one held", describe(evs))
	}
}

// testAuditAppendOnlyInDatabase: even plain SQL cannot change or delete
// an event by mistake (an attacker can lift this; VerifyAudit catches them).
func testAuditAppendOnlyInDatabase(t *testing.T, open Opener) {
	s := newSetup(t, open)
	receive(t, s.db, inbound("IN-1", "h1"))
	for _, q := range []string{
		`UPDATE audit_events SET actor = 'someone_else'`,
		`DELETE FROM audit_events`,
	} {
		if _, err := s.db.SQL().Exec(q); err == nil {
			t.Errorf("%s succeeded, want it refused", q)
		}
	}
	verifyIntact(t, s.db, 1)
}
