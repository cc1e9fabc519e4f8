// Package storetest is the conformance suite of refbridge's store: every
// behaviour the engine relies on, run against each database engine the
// store supports (SQLite and PostgreSQL). Tests that need raw SQL write it
// with '?' placeholders and bind it with store.DB.Bind, so that no test
// depends on an engine.
package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"refbridge"
	"refbridge/store"
)

// Opener opens the store cfg describes, returning Open's error. cfg.Path is
// "" for a fresh, empty store (the opener chooses where) or the Path() of a
// store the suite opened before and closed, to open it again (with other
// keys, say). The suite closes what it opens; Close is idempotent, so the
// opener may also register t.Cleanup(db.Close).
type Opener func(t *testing.T, cfg store.Config) (*store.DB, error)

// mustOpen opens a store or fails the test.
func mustOpen(t *testing.T, open Opener, cfg store.Config) *store.DB {
	t.Helper()
	db, err := open(t, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Run runs the whole suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, open Opener)
	}{
		{"AADBindsPayloadToRow", testAADBindsPayloadToRow},
		{"Accounts", testAccounts},
		{"ActivityAndKeyPrefix", testActivityAndKeyPrefix},
		{"AuditAppendOnlyInDatabase", testAuditAppendOnlyInDatabase},
		{"AuditAppendValidation", testAuditAppendValidation},
		{"AuditChainVerifies", testAuditChainVerifies},
		{"AuditConcurrentChain", testAuditConcurrentChain},
		{"AuditPurgeRecorded", testAuditPurgeRecorded},
		{"AuditRolledBackWithChange", testAuditRolledBackWithChange},
		{"AuditWrittenWithChanges", testAuditWrittenWithChanges},
		{"Cursor", testCursor},
		{"IntakeOutcomes", testIntakeOutcomes},
		{"IntakeCreateOnly", testIntakeCreateOnly},
		{"IntakeInvalidBatchStoresNothing", testIntakeInvalidBatchStoresNothing},
		{"IntakeCancelledBatchIsAllOrNothing", testIntakeCancelledBatchIsAllOrNothing},
		{"KeyRotation", testKeyRotation},
		{"ListAndCounts", testListAndCounts},
		{"MigrateIdempotent", testMigrateIdempotent},
		{"NotFound", testNotFound},
		{"PurgeAfterRetention", testPurgeAfterRetention},
		{"PurgeOnTerminal", testPurgeOnTerminal},
		{"QueueWorksExchange", testQueueWorksExchange},
		{"ReopenKeepsEverything", testReopenKeepsEverything},
		{"RetryResumesWhereItDied", testRetryResumesWhereItDied},
		{"Sessions", testSessions},
		{"TransitionChanges", testTransitionChanges},
		{"TransitionConcurrentOneWins", testTransitionConcurrentOneWins},
		{"TransitionGroupIsolatesFailures", testTransitionGroupIsolatesFailures},
		{"TransitionPreconditions", testTransitionPreconditions},
		{"UniqueJobPerExchange", testUniqueJobPerExchange},
		{"UpdateWhileRunningIsRequeued", testUpdateWhileRunningIsRequeued},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open)
		})
	}
}

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// setup is what most tests start from: a fresh store and its clock.
type setup struct {
	db    *store.DB
	clock *clock
	keys  *store.Keyring
	cfg   store.Config
}

type option func(*store.Config)

func withRetention(d time.Duration) option { return func(c *store.Config) { c.Retention = d } }

func newSetup(t *testing.T, open Opener, opts ...option) *setup {
	t.Helper()
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	cfg := store.Config{Keys: keys, Now: clk.Now}
	for _, o := range opts {
		o(&cfg)
	}
	db := mustOpen(t, open, cfg)
	return &setup{db: db, clock: clk, keys: keys, cfg: cfg}
}

// inbound makes an F1 item whose payload carries synthetic personal data.
func inbound(key, hash string) refbridge.Inbound {
	return refbridge.Inbound{
		Flow: refbridge.FlowIntervention, Key: key, ContentHash: hash,
		Payload: []byte(`{"progres_interventionnumber":"` + key + `","name":"Testchild ` + hash + `","dob":"2014-03-15"}`),
	}
}

func receive(t *testing.T, db *store.DB, items ...refbridge.Inbound) []refbridge.Intake {
	t.Helper()
	out, err := db.Receive(context.Background(), items)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(out) != len(items) {
		t.Fatalf("Receive returned %d intakes for %d items", len(out), len(items))
	}
	return out
}

func get(t *testing.T, db *store.DB, id string) refbridge.Exchange {
	t.Helper()
	ex, err := db.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return ex
}

func wantCode(t *testing.T, err error, code refbridge.ErrorCode) {
	t.Helper()
	if got := refbridge.ErrorCodeOf(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// inspector is an insert-only River client for looking at the job table
// through River's own API, so the suite is the same on every engine.
func inspector(t *testing.T, db *store.DB) *river.Client[*sql.Tx] {
	t.Helper()
	c, err := db.NewQueue(store.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// liveStates are the job states that count as "queued or working".
var liveStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// jobsByExchange returns the process_exchange jobs in the given states,
// grouped by exchange id.
func jobsByExchange(t *testing.T, c *river.Client[*sql.Tx], states ...rivertype.JobState) map[string][]*rivertype.JobRow {
	t.Helper()
	params := river.NewJobListParams().Kinds(store.ProcessExchange{}.Kind()).First(10000)
	if len(states) > 0 {
		params = params.States(states...)
	}
	res, err := c.JobList(context.Background(), params)
	if err != nil {
		t.Fatalf("JobList: %v", err)
	}
	out := map[string][]*rivertype.JobRow{}
	for _, j := range res.Jobs {
		var args store.ProcessExchange
		if err := json.Unmarshal(j.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		out[args.ExchangeID] = append(out[args.ExchangeID], j)
	}
	return out
}

func testIntakeOutcomes(t *testing.T, open Opener) {
	ctx := context.Background()
	problems := []refbridge.Problem{{Field: "interventions[0].sex", Rule: "unknown_code", Detail: "not in the profile's sex code table"}}

	tests := []struct {
		name string
		// before is received (and its jobs cancelled, so a new job shows) first.
		before      []refbridge.Inbound
		beforeTo    refbridge.ExchangeState // transition the existing exchange here first, if set
		item        refbridge.Inbound
		wantOutcome refbridge.IntakeOutcome
		wantState   refbridge.ExchangeState
		wantNewJob  bool
	}{
		{name: "NewIsAccepted", item: inbound("IN-1", "h1"),
			wantOutcome: refbridge.IntakeAccepted, wantState: refbridge.StateReceived, wantNewJob: true},
		{name: "NewRefusedIsRejected",
			item: func() refbridge.Inbound {
				in := inbound("IN-1", "h1")
				in.State = refbridge.StateRejected
				in.Problems = problems
				return in
			}(),
			wantOutcome: refbridge.IntakeRejected, wantState: refbridge.StateRejected, wantNewJob: true},
		{name: "SameContentIsDuplicate", before: []refbridge.Inbound{inbound("IN-1", "h1")}, item: inbound("IN-1", "h1"),
			wantOutcome: refbridge.IntakeDuplicate, wantState: refbridge.StateReceived},
		{name: "DuplicateOfDoneChangesNothing", before: []refbridge.Inbound{inbound("IN-1", "h1")}, beforeTo: refbridge.StateDone,
			item: inbound("IN-1", "h1"), wantOutcome: refbridge.IntakeDuplicate, wantState: refbridge.StateDone},
		{name: "NewContentIsUpdate", before: []refbridge.Inbound{inbound("IN-1", "h1")}, beforeTo: refbridge.StateHeld,
			item: inbound("IN-1", "h2"), wantOutcome: refbridge.IntakeUpdated, wantState: refbridge.StateReceived, wantNewJob: true},
		{name: "UpdateReopensPurgedDone", before: []refbridge.Inbound{inbound("IN-1", "h1")}, beforeTo: refbridge.StateDone,
			item: inbound("IN-1", "h2"), wantOutcome: refbridge.IntakeUpdated, wantState: refbridge.StateReceived, wantNewJob: true},
		{name: "RefusedUpdateIsRejected", before: []refbridge.Inbound{inbound("IN-1", "h1")},
			item: func() refbridge.Inbound {
				in := inbound("IN-1", "h2")
				in.State = refbridge.StateRejected
				in.Problems = problems
				return in
			}(),
			wantOutcome: refbridge.IntakeRejected, wantState: refbridge.StateRejected, wantNewJob: true},
		{name: "OtherFlowSameKeyIsNew", before: []refbridge.Inbound{inbound("IN-1", "h1")},
			item: func() refbridge.Inbound {
				in := inbound("IN-1", "h1")
				in.Flow = refbridge.FlowServiceDecision
				return in
			}(),
			wantOutcome: refbridge.IntakeAccepted, wantState: refbridge.StateReceived, wantNewJob: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			jobs := inspector(t, s.db)

			var beforeID string
			if len(tt.before) > 0 {
				beforeID = receive(t, s.db, tt.before...)[0].ExchangeID
				if tt.beforeTo != "" {
					if _, err := s.db.Transition(ctx, beforeID, store.Change{To: tt.beforeTo, Reason: "x", Problems: problems}); err != nil {
						t.Fatal(err)
					}
				}
				// Finish the first job so that a second one can be seen.
				for _, js := range jobsByExchange(t, jobs, liveStates...) {
					for _, j := range js {
						if _, err := jobs.JobCancel(ctx, j.ID); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			s.clock.Add(time.Minute)
			got := receive(t, s.db, tt.item)[0]
			if got.Outcome != tt.wantOutcome {
				t.Fatalf("outcome = %s, want %s", got.Outcome, tt.wantOutcome)
			}
			if beforeID != "" && tt.item.Flow == tt.before[0].Flow && got.ExchangeID != beforeID {
				t.Fatalf("exchange id = %s, want the existing %s", got.ExchangeID, beforeID)
			}
			ex := get(t, s.db, got.ExchangeID)
			if ex.State != tt.wantState {
				t.Fatalf("state = %s, want %s", ex.State, tt.wantState)
			}
			switch tt.wantOutcome {
			case refbridge.IntakeDuplicate:
				if ex.ContentHash != tt.before[0].ContentHash {
					t.Fatalf("duplicate changed the content hash to %s", ex.ContentHash)
				}
			default:
				if ex.ContentHash != tt.item.ContentHash || !bytes.Equal(ex.Payload, tt.item.Payload) {
					t.Fatalf("stored hash %s / payload %q, want the item's", ex.ContentHash, ex.Payload)
				}
				if !slices.Equal(ex.Problems, tt.item.Problems) || ex.Reason != "" || !ex.PurgedAt.IsZero() {
					t.Fatalf("problems %v reason %q purged %v: want the item's problems, no reason, not purged", ex.Problems, ex.Reason, ex.PurgedAt)
				}
				if !ex.UpdatedAt.Equal(s.clock.Now()) {
					t.Fatalf("UpdatedAt = %v, want %v", ex.UpdatedAt, s.clock.Now())
				}
			}
			live := jobsByExchange(t, jobs, liveStates...)[got.ExchangeID]
			want := 0
			if tt.wantNewJob {
				want = 1
			}
			if len(live) != want {
				t.Fatalf("%d live jobs for the exchange, want %d", len(live), want)
			}
		})
	}

	t.Run("BatchWithRepeatedKey", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, open)
		jobs := inspector(t, s.db)
		got := receive(t, s.db, inbound("IN-1", "h1"), inbound("IN-2", "h1"), inbound("IN-1", "h1"), inbound("IN-1", "h2"))
		wantOutcomes := []refbridge.IntakeOutcome{refbridge.IntakeAccepted, refbridge.IntakeAccepted, refbridge.IntakeDuplicate, refbridge.IntakeUpdated}
		for i, w := range wantOutcomes {
			if got[i].Outcome != w {
				t.Fatalf("item %d: outcome %s, want %s", i, got[i].Outcome, w)
			}
		}
		if got[0].ExchangeID != got[2].ExchangeID || got[0].ExchangeID != got[3].ExchangeID || got[0].ExchangeID == got[1].ExchangeID {
			t.Fatalf("exchange ids %v: want items 0, 2, 3 on one exchange", got)
		}
		if ex := get(t, s.db, got[0].ExchangeID); ex.ContentHash != "h2" {
			t.Fatalf("hash = %s, want the last content h2", ex.ContentHash)
		}
		byEx := jobsByExchange(t, jobs)
		if len(byEx) != 2 || len(byEx[got[0].ExchangeID]) != 1 || len(byEx[got[1].ExchangeID]) != 1 {
			t.Fatalf("jobs per exchange = %v, want exactly one each for 2 exchanges", counts(byEx))
		}
	})

	t.Run("ManyItemsOneJobEach", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, open)
		jobs := inspector(t, s.db)
		var items []refbridge.Inbound
		for i := range 250 {
			items = append(items, inbound(fmt.Sprintf("IN-%04d", i), "h1"))
		}
		got := receive(t, s.db, items...)
		again := receive(t, s.db, items...)
		byEx := jobsByExchange(t, jobs)
		for i := range items {
			if got[i].Outcome != refbridge.IntakeAccepted || again[i].Outcome != refbridge.IntakeDuplicate || again[i].ExchangeID != got[i].ExchangeID {
				t.Fatalf("item %d: %v then %v, want accepted then duplicate of the same exchange", i, got[i], again[i])
			}
			if n := len(byEx[got[i].ExchangeID]); n != 1 {
				t.Fatalf("item %d: %d jobs, want 1", i, n)
			}
		}
		if len(byEx) != len(items) {
			t.Fatalf("%d exchanges with jobs, want %d", len(byEx), len(items))
		}
	})
}

func counts(m map[string][]*rivertype.JobRow) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// testIntakeCreateOnly: a CreateOnly item creates a new exchange, but never
// changes an existing one, whatever its content and state (a poll's stale
// view must not re-open a referral that was delivered meanwhile).
func testIntakeCreateOnly(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	item := inbound("IN-1", "h1")
	item.CreateOnly = true
	first := receive(t, s.db, item)[0]
	if first.Outcome != refbridge.IntakeAccepted {
		t.Fatalf("a new CreateOnly item: %s, want accepted", first.Outcome)
	}
	if _, err := s.db.Transition(ctx, first.ExchangeID, store.Change{To: refbridge.StateDelivered}); err != nil {
		t.Fatal(err)
	}
	stale := inbound("IN-1", "h0")
	stale.CreateOnly = true
	if got := receive(t, s.db, stale)[0]; got.Outcome != refbridge.IntakeDuplicate || got.ExchangeID != first.ExchangeID {
		t.Fatalf("a CreateOnly item with other content for an existing key: %+v, want a duplicate of %s", got, first.ExchangeID)
	}
	if ex := get(t, s.db, first.ExchangeID); ex.State != refbridge.StateDelivered || ex.ContentHash != "h1" {
		t.Fatalf("the existing exchange changed: %s with hash %s", ex.State, ex.ContentHash)
	}
	// Without the flag the same item is an update (DTP re-sending changed content).
	if got := receive(t, s.db, inbound("IN-1", "h0"))[0]; got.Outcome != refbridge.IntakeUpdated {
		t.Fatalf("an item with new content: %s, want updated", got.Outcome)
	}
}

func testIntakeInvalidBatchStoresNothing(t *testing.T, open Opener) {
	tests := []struct {
		name string
		bad  refbridge.Inbound
	}{
		{"UnknownFlow", refbridge.Inbound{Flow: "F9", Key: "k", ContentHash: "h"}},
		{"EmptyKey", refbridge.Inbound{Flow: refbridge.FlowIntervention, ContentHash: "h"}},
		{"BlankKey", refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: "   ", ContentHash: "h"}},
		{"UntrimmedKey", refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: " TST-1", ContentHash: "h"}},
		{"EmptyHash", refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: "k"}},
		{"StateNotInbound", refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: "k", ContentHash: "h", State: refbridge.StateDone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			jobs := inspector(t, s.db)
			// Valid items first: they are written, then rolled back.
			items := []refbridge.Inbound{inbound("IN-1", "h1"), inbound("IN-2", "h1"), tt.bad}
			_, err := s.db.Receive(context.Background(), items)
			wantCode(t, err, refbridge.EInvalid)
			if _, total, err := s.db.List(context.Background(), store.Filter{}); err != nil || total != 0 {
				t.Fatalf("List after failed batch: total %d, err %v; want nothing stored", total, err)
			}
			if n := len(jobsByExchange(t, jobs)); n != 0 {
				t.Fatalf("%d jobs after failed batch, want 0", n)
			}
			// The store is still usable.
			receive(t, s.db, inbound("IN-1", "h1"))
		})
	}
}

func testIntakeCancelledBatchIsAllOrNothing(t *testing.T, open Opener) {
	s := newSetup(t, open)
	jobs := inspector(t, s.db)
	const n = 400
	batch := func(round int) []refbridge.Inbound {
		var items []refbridge.Inbound
		for i := range n {
			items = append(items, inbound(fmt.Sprintf("R%d-%04d", round, i), "h1"))
		}
		return items
	}
	// Time one whole batch, then cancel others at points inside it.
	start := time.Now()
	receive(t, s.db, batch(0)...)
	d := time.Since(start)
	for round, delay := range []time.Duration{0, d / 8, d / 4, d / 2, 3 * d / 4, 4 * d} {
		round++
		items := batch(round)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(delay, cancel)
		_, err := s.db.Receive(ctx, items)
		cancel()
		_, total, lerr := s.db.List(context.Background(), store.Filter{Key: items[0].Key})
		if lerr != nil {
			t.Fatal(lerr)
		}
		_, all, _ := s.db.List(context.Background(), store.Filter{})
		stored := all
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: err = %v, want context.Canceled", round, err)
			}
			if total != 0 {
				t.Fatalf("round %d: Receive failed but its first item was stored", round)
			}
		} else if total != 1 {
			t.Fatalf("round %d: Receive succeeded but its first item is missing", round)
		}
		t.Logf("round %d (cancel after %v): err=%v, %d exchanges stored so far", round, delay, err, stored)
		jobCount := len(jobsByExchange(t, jobs))
		if jobCount != stored {
			t.Fatalf("round %d: %d exchanges but %d with jobs: intake and enqueue diverged", round, stored, jobCount)
		}
		if stored%n != 0 {
			t.Fatalf("round %d: %d exchanges stored, want a multiple of the batch size %d", round, stored, n)
		}
	}
}

func testNotFound(t *testing.T, open Opener) {
	s := newSetup(t, open)
	ctx := context.Background()
	_, err := s.db.Get(ctx, "0190aaaa-0000-7000-8000-000000000000")
	wantCode(t, err, refbridge.ENotFound)
	_, err = s.db.GetByKey(ctx, refbridge.FlowIntervention, "IN-404")
	wantCode(t, err, refbridge.ENotFound)
	_, err = s.db.Transition(ctx, "0190aaaa-0000-7000-8000-000000000000", store.Change{To: refbridge.StateDone})
	wantCode(t, err, refbridge.ENotFound)

	id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
	ex, err := s.db.GetByKey(ctx, refbridge.FlowIntervention, "IN-1")
	if err != nil || ex.ID != id {
		t.Fatalf("GetByKey = %v, %v; want exchange %s", ex.ID, err, id)
	}
	_, err = s.db.GetByKey(ctx, refbridge.FlowReferral, "IN-1")
	wantCode(t, err, refbridge.ENotFound)
}

func testTransitionPreconditions(t *testing.T, open Opener) {
	tests := []struct {
		name     string
		change   func(ex refbridge.Exchange) store.Change
		wantCode refbridge.ErrorCode
	}{
		{"FromMatches", func(refbridge.Exchange) store.Change {
			return store.Change{From: []refbridge.ExchangeState{refbridge.StateHeld, refbridge.StateReceived}, To: refbridge.StateMapped}
		}, ""},
		{"FromEmptyMeansAny", func(refbridge.Exchange) store.Change { return store.Change{To: refbridge.StateMapped} }, ""},
		{"FromMismatch", func(refbridge.Exchange) store.Change {
			return store.Change{From: []refbridge.ExchangeState{refbridge.StateMapped}, To: refbridge.StateDelivered}
		}, refbridge.EConflict},
		{"ContentHashMatches", func(ex refbridge.Exchange) store.Change {
			return store.Change{IfContentHash: ex.ContentHash, To: refbridge.StateMapped}
		}, ""},
		{"ContentHashChanged", func(refbridge.Exchange) store.Change {
			return store.Change{IfContentHash: "stale", To: refbridge.StateMapped}
		}, refbridge.EConflict},
		{"ReasonChanged", func(refbridge.Exchange) store.Change {
			return store.Change{IfReason: "sync_pending", To: refbridge.StateMapped}
		}, refbridge.EConflict},
		{"UnknownTarget", func(refbridge.Exchange) store.Change { return store.Change{To: "shipped"} }, refbridge.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
			before := get(t, s.db, id)
			_, err := s.db.Transition(context.Background(), id, tt.change(before))
			wantCode(t, err, tt.wantCode)
			after := get(t, s.db, id)
			if tt.wantCode != "" && (after.State != before.State || !after.UpdatedAt.Equal(before.UpdatedAt)) {
				t.Fatalf("a refused transition changed the exchange: %v → %v", before.State, after.State)
			}
		})
	}
}

func testTransitionChanges(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	jobs := inspector(t, s.db)
	id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
	problems := []refbridge.Problem{{Field: "owned_by", Rule: "differs", Detail: "the case worker changed it"}}

	s.clock.Add(time.Second)
	mapped := []byte(`{"data":{"name_first":"Testchild"}}`)
	ex, err := s.db.Transition(ctx, id, store.Change{
		From: []refbridge.ExchangeState{refbridge.StateReceived}, To: refbridge.StateMapped,
		Reason: "mapped_ok", Problems: problems, PeerRef: "case-1", Payload: mapped, Attempted: true, LastError: refbridge.ETransient,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != refbridge.StateMapped || ex.Reason != "mapped_ok" || !slices.Equal(ex.Problems, problems) || ex.PeerRef != "case-1" ||
		!bytes.Equal(ex.Payload, mapped) || ex.Attempts != 1 || ex.LastError != refbridge.ETransient || !ex.UpdatedAt.Equal(s.clock.Now()) {
		t.Fatalf("Transition result = %+v", ex)
	}
	if got := get(t, s.db, id); !bytes.Equal(got.Payload, mapped) || got.State != refbridge.StateMapped {
		t.Fatalf("stored exchange = %+v", got)
	}

	// Zero values: Reason and Problems clear; PeerRef, Payload, LastError keep.
	ex, err = s.db.Transition(ctx, id, store.Change{To: refbridge.StateDelivered, Attempted: true})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Reason != "" || ex.Problems != nil || ex.PeerRef != "case-1" || !bytes.Equal(ex.Payload, mapped) ||
		ex.Attempts != 2 || ex.LastError != refbridge.ETransient {
		t.Fatalf("after a zero change = %+v", ex)
	}
	if !ex.CreatedAt.Before(ex.UpdatedAt) || ex.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt %v UpdatedAt %v: want UTC and created before updated", ex.CreatedAt, ex.UpdatedAt)
	}

	// ContentHash replaces the hash (a held referral released with new
	// content): the same content arriving later is a duplicate, and a
	// precondition on the old hash fails.
	if ex, err = s.db.Transition(ctx, id, store.Change{To: refbridge.StateDelivered, ContentHash: "h2"}); err != nil || ex.ContentHash != "h2" {
		t.Fatalf("ContentHash change: %+v, %v", ex, err)
	}
	if got := receive(t, s.db, inbound("IN-1", "h2"))[0]; got.Outcome != refbridge.IntakeDuplicate {
		t.Fatalf("intake of the content the exchange now holds: %s, want duplicate", got.Outcome)
	}
	_, err = s.db.Transition(ctx, id, store.Change{To: refbridge.StateDelivered, IfContentHash: "h1"})
	wantCode(t, err, refbridge.EConflict)

	// Enqueue with RunAt schedules a job for later (the intake job is still
	// live, so cancel it first to see the new one).
	for _, j := range jobsByExchange(t, jobs, liveStates...)[id] {
		if _, err := jobs.JobCancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	runAt := time.Now().Add(time.Hour).UTC()
	if _, err := s.db.Transition(ctx, id, store.Change{To: refbridge.StateDelivered, Enqueue: true, RunAt: runAt}); err != nil {
		t.Fatal(err)
	}
	live := jobsByExchange(t, jobs, liveStates...)[id]
	if len(live) != 1 || live[0].State != rivertype.JobStateScheduled || live[0].ScheduledAt.Sub(runAt).Abs() > time.Second {
		t.Fatalf("live jobs = %v, want one scheduled at %v", live, runAt)
	}
}

func testTransitionConcurrentOneWins(t *testing.T, open Opener) {
	s := newSetup(t, open)
	id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
	const workers = 16
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		wins      int
		conflicts int
	)
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			_, err := s.db.Transition(context.Background(), id, store.Change{
				From: []refbridge.ExchangeState{refbridge.StateReceived}, To: refbridge.StateMapped,
				PeerRef: fmt.Sprintf("worker-%d", i), Attempted: true,
			})
			mu.Lock()
			defer mu.Unlock()
			switch refbridge.ErrorCodeOf(err) {
			case "":
				wins++
			case refbridge.EConflict:
				conflicts++
			default:
				t.Errorf("worker %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 || conflicts != workers-1 {
		t.Fatalf("%d wins and %d conflicts, want 1 and %d", wins, conflicts, workers-1)
	}
	if ex := get(t, s.db, id); ex.Attempts != 1 {
		t.Fatalf("attempts = %d, want 1 (one winner)", ex.Attempts)
	}
}

// testTransitionGroupIsolatesFailures: transitions committed together
// (group commit) succeed or fail each on its own — an unknown id, a failed
// precondition or a cancelled caller never undoes or blocks the others.
func testTransitionGroupIsolatesFailures(t *testing.T, open Opener) {
	s := newSetup(t, open)
	const n = 40
	items := make([]refbridge.Inbound, n)
	for i := range items {
		items[i] = inbound(fmt.Sprintf("IN-%02d", i), "h1")
	}
	intakes := receive(t, s.db, items...)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	start := make(chan struct{})
	for i := range n + 1 {
		wg.Go(func() {
			<-start
			ctx, id := context.Background(), "unknown-exchange"
			c := store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived}, To: refbridge.StateMapped, Attempted: true}
			if i < n {
				id = intakes[i].ExchangeID
			}
			switch i % 4 {
			case 1:
				c.From = []refbridge.ExchangeState{refbridge.StateDelivered} // fails its precondition
			case 2:
				ctx = cancelled
			}
			_, errs[i] = s.db.Transition(ctx, id, c)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		want := refbridge.ErrorCode("")
		switch {
		case i == n:
			want = refbridge.ENotFound
		case i%4 == 1:
			want = refbridge.EConflict
		case i%4 == 2:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("change %d with a cancelled context: %v, want context.Canceled", i, err)
			}
			want = refbridge.EInternal
		}
		if got := refbridge.ErrorCodeOf(err); got != want {
			t.Errorf("change %d: code %q (%v), want %q", i, got, err, want)
		}
		if i == n {
			continue
		}
		ex := get(t, s.db, intakes[i].ExchangeID)
		wantState := refbridge.StateMapped
		if i%4 == 1 || i%4 == 2 {
			wantState = refbridge.StateReceived
		}
		if ex.State != wantState || (wantState == refbridge.StateMapped) != (ex.Attempts == 1) {
			t.Errorf("exchange %d is %s with %d attempts, want %s", i, ex.State, ex.Attempts, wantState)
		}
	}
}

func testPurgeOnTerminal(t *testing.T, open Opener) {
	tests := []struct {
		to         refbridge.ExchangeState
		wantPurged bool
	}{
		{refbridge.StateDone, true},
		{refbridge.StateFailed, true},
		{refbridge.StateDead, false},     // the focal point may still retry it
		{refbridge.StateRejected, false}, // the sender is still to be told
		{refbridge.StateHeld, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.to), func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
			s.clock.Add(time.Minute)
			ex, err := s.db.Transition(context.Background(), id, store.Change{To: tt.to})
			if err != nil {
				t.Fatal(err)
			}
			got := get(t, s.db, id)
			if tt.wantPurged {
				if ex.Payload != nil || got.Payload != nil || !got.PurgedAt.Equal(s.clock.Now()) {
					t.Fatalf("payload %q, purged at %v: want nil payload purged at %v", got.Payload, got.PurgedAt, s.clock.Now())
				}
				// Purge finds nothing left to do.
				if n, err := s.db.Purge(context.Background()); err != nil || n != 0 {
					t.Fatalf("Purge = %d, %v; want 0", n, err)
				}
				return
			}
			if got.Payload == nil || !got.PurgedAt.IsZero() {
				t.Fatalf("non-terminal %s lost its payload", tt.to)
			}
		})
	}
}

func testPurgeAfterRetention(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open, withRetention(time.Hour))
	got := receive(t, s.db, inbound("IN-1", "h1"), inbound("IN-2", "h1"), inbound("IN-3", "h1"))
	done, later, open_ := got[0].ExchangeID, got[1].ExchangeID, got[2].ExchangeID
	if _, err := s.db.Transition(ctx, done, store.Change{To: refbridge.StateDone}); err != nil {
		t.Fatal(err)
	}
	if ex := get(t, s.db, done); ex.Payload == nil {
		t.Fatal("payload purged at once although Retention is an hour")
	}
	s.clock.Add(30 * time.Minute)
	if _, err := s.db.Transition(ctx, later, store.Change{To: refbridge.StateFailed}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.db.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("Purge at +30m = %d, %v; want 0", n, err)
	}
	s.clock.Add(31 * time.Minute)
	if n, err := s.db.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge at +61m = %d, %v; want 1", n, err)
	}
	if ex := get(t, s.db, done); ex.Payload != nil || !ex.PurgedAt.Equal(s.clock.Now()) {
		t.Fatalf("done exchange after retention: payload %v purged %v", ex.Payload != nil, ex.PurgedAt)
	}
	if ex := get(t, s.db, later); ex.Payload == nil {
		t.Fatal("exchange terminal for 31m purged with a 1h retention")
	}
	s.clock.Add(time.Hour)
	if n, err := s.db.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge at +2h = %d, %v; want 1", n, err)
	}
	if ex := get(t, s.db, open_); ex.Payload == nil {
		t.Fatal("a non-terminal exchange was purged")
	}
}

func testCursor(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	tests := []struct{ name, set, want string }{
		{"f1d", "", ""},
		{"f1d", "2025-03-01T08:00:00Z", "2025-03-01T08:00:00Z"},
		{"f1d", "2025-03-01T09:00:00Z", "2025-03-01T09:00:00Z"},
		{"f2", "", ""},
		{"f2", "page-7", "page-7"},
	}
	for _, tt := range tests {
		if tt.set != "" {
			if err := s.db.SetCursor(ctx, tt.name, tt.set); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.db.Cursor(ctx, tt.name)
		if err != nil || got != tt.want {
			t.Fatalf("Cursor(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if got, _ := s.db.Cursor(ctx, "f1d"); got != "2025-03-01T09:00:00Z" {
		t.Fatalf("cursors interfere: f1d = %q", got)
	}
	wantCode(t, s.db.SetCursor(ctx, "", "x"), refbridge.EInvalid)
}

func testListAndCounts(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	t0 := s.clock.Now()
	type made struct {
		flow  refbridge.Flow
		key   string
		state refbridge.ExchangeState
	}
	plan := []made{
		{refbridge.FlowIntervention, "IN-1", refbridge.StateDone},
		{refbridge.FlowIntervention, "IN-2", refbridge.StateHeld},
		{refbridge.FlowIntervention, "IN-3", refbridge.StateReceived},
		{refbridge.FlowReferral, "case-1#000000000001", refbridge.StateDelivered},
		{refbridge.FlowReferral, "case-2#000000000002", refbridge.StateHeld},
		{refbridge.FlowReferralDecision, "case-1#000000000001", refbridge.StateDone},
		{refbridge.FlowServiceDecision, "IN-1", refbridge.StateDead},
	}
	ids := make([]string, len(plan))
	for i, p := range plan {
		s.clock.Add(time.Minute)
		in := inbound(p.key, "h1")
		in.Flow = p.flow
		ids[i] = receive(t, s.db, in)[0].ExchangeID
		if p.state != refbridge.StateReceived {
			reason := ""
			if p.state == refbridge.StateHeld {
				reason = "consent_missing"
			}
			if _, err := s.db.Transition(ctx, ids[i], store.Change{To: p.state, Reason: reason}); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i+1) * time.Minute) }

	tests := []struct {
		name      string
		f         store.Filter
		wantIdx   []int // indexes into plan, in the expected order
		wantTotal int
	}{
		{"All newest first", store.Filter{}, []int{6, 5, 4, 3, 2, 1, 0}, 7},
		{"Flow", store.Filter{Flow: refbridge.FlowReferral}, []int{4, 3}, 2},
		{"State", store.Filter{State: refbridge.StateHeld}, []int{4, 1}, 2},
		{"FlowAndState", store.Filter{Flow: refbridge.FlowIntervention, State: refbridge.StateHeld}, []int{1}, 1},
		{"Reason", store.Filter{Reason: "consent_missing"}, []int{4, 1}, 2},
		{"Key", store.Filter{Key: "IN-1"}, []int{6, 0}, 2},
		{"Since", store.Filter{Since: at(4)}, []int{6, 5, 4}, 3},
		{"Until", store.Filter{Until: at(2)}, []int{1, 0}, 2},
		{"SinceUntil", store.Filter{Since: at(1), Until: at(3)}, []int{2, 1}, 2},
		{"Limit", store.Filter{Limit: 3}, []int{6, 5, 4}, 7},
		{"LimitOffset", store.Filter{Limit: 3, Offset: 3}, []int{3, 2, 1}, 7},
		{"OffsetPastEnd", store.Filter{Limit: 3, Offset: 9}, nil, 7},
		{"OffsetNoLimit", store.Filter{Offset: 5}, []int{1, 0}, 7},
		{"NoMatch", store.Filter{Flow: refbridge.FlowReferral, State: refbridge.StateDone}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, total, err := s.db.List(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var gotIdx []int
			for _, ex := range got {
				if ex.Payload != nil {
					t.Fatal("List returned a payload")
				}
				gotIdx = append(gotIdx, slices.Index(ids, ex.ID))
			}
			if !slices.Equal(gotIdx, tt.wantIdx) || total != tt.wantTotal {
				t.Fatalf("List = %v (total %d), want %v (total %d)", gotIdx, total, tt.wantIdx, tt.wantTotal)
			}
		})
	}

	t.Run("Counts", func(t *testing.T) {
		t.Parallel()
		all, err := s.db.Counts(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[refbridge.Flow]map[refbridge.ExchangeState]int{
			refbridge.FlowIntervention:     {refbridge.StateDone: 1, refbridge.StateHeld: 1, refbridge.StateReceived: 1},
			refbridge.FlowReferral:         {refbridge.StateDelivered: 1, refbridge.StateHeld: 1},
			refbridge.FlowReferralDecision: {refbridge.StateDone: 1},
			refbridge.FlowServiceDecision:  {refbridge.StateDead: 1},
		}
		if fmt.Sprint(all) != fmt.Sprint(want) {
			t.Fatalf("Counts(all) = %v, want %v", all, want)
		}
		recent, err := s.db.Counts(ctx, at(5))
		if err != nil {
			t.Fatal(err)
		}
		wantRecent := map[refbridge.Flow]map[refbridge.ExchangeState]int{
			refbridge.FlowReferralDecision: {refbridge.StateDone: 1},
			refbridge.FlowServiceDecision:  {refbridge.StateDead: 1},
		}
		if fmt.Sprint(recent) != fmt.Sprint(wantRecent) {
			t.Fatalf("Counts(since) = %v, want %v", recent, wantRecent)
		}
	})
}

func testKeyRotation(t *testing.T, open Opener) {
	ctx := context.Background()
	k1, k1text, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	_, k2text, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	both, err := store.ParseKeyring(k2text + k1text) // k2 first: current
	if err != nil {
		t.Fatal(err)
	}
	onlyK2, err := store.ParseKeyring(k2text)
	if err != nil {
		t.Fatal(err)
	}
	if both.Current() == k1.Current() || onlyK2.Current() != both.Current() {
		t.Fatal("keyring order: the first key must be current")
	}

	db := mustOpen(t, open, store.Config{Keys: k1})
	path := db.Path()
	var items []refbridge.Inbound
	for i := range 450 { // more than one rotation batch
		items = append(items, inbound(fmt.Sprintf("IN-%04d", i), "h1"))
	}
	old := receive(t, db, items...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Add the new key in front: old rows still read, new rows use it.
	db = mustOpen(t, open, store.Config{Path: path, Keys: both})
	if ex := get(t, db, old[7].ExchangeID); !bytes.Equal(ex.Payload, items[7].Payload) {
		t.Fatal("old payload unreadable after adding a key")
	}
	fresh := receive(t, db, inbound("IN-new", "h1"))[0].ExchangeID
	if underKey(t, db, k1.Current()) != len(items) || underKey(t, db, both.Current()) != 1 {
		t.Fatalf("before rotation: %d rows under k1, %d under k2", underKey(t, db, k1.Current()), underKey(t, db, both.Current()))
	}
	n, err := db.RotateKeys(ctx)
	if err != nil || n != len(items) {
		t.Fatalf("RotateKeys = %d, %v; want %d", n, err, len(items))
	}
	if n, err := db.RotateKeys(ctx); err != nil || n != 0 {
		t.Fatalf("second RotateKeys = %d, %v; want 0 (resumable, idempotent)", n, err)
	}
	if underKey(t, db, k1.Current()) != 0 {
		t.Fatal("rows left under the old key")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The old key can go.
	db = mustOpen(t, open, store.Config{Path: path, Keys: onlyK2})
	for _, i := range []int{0, 201, 449} {
		if ex := get(t, db, old[i].ExchangeID); !bytes.Equal(ex.Payload, items[i].Payload) {
			t.Fatalf("row %d unreadable with only the new key", i)
		}
	}
	if ex := get(t, db, fresh); ex.Payload == nil {
		t.Fatal("new row unreadable")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Removing a key still in use is refused at Open, naming only the id.
	k3, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	db, err = open(t, store.Config{Path: path, Keys: k3})
	if err == nil {
		db.Close()
		t.Fatalf("Open with a keyring lacking %s succeeded", onlyK2.Current())
	}
	if !bytes.Contains([]byte(err.Error()), []byte(onlyK2.Current())) {
		t.Fatalf("Open with a keyring lacking the key in use: err = %v, want it to name %s", err, onlyK2.Current())
	}
}

// underKey counts rows whose payload is under key id. Raw SQL in the suite
// is written with '?' and bound by the store (DB.Bind), so it runs on
// every engine.
func underKey(t *testing.T, db *store.DB, id string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(db.Bind(`SELECT COUNT(*) FROM exchange WHERE key_id = ?`), id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testAADBindsPayloadToRow(t *testing.T, open Opener) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tamper string                  // SQL run on rows a and b
		args   func(a, b string) []any // its arguments
	}{
		{"PayloadCopiedToOtherRow", `UPDATE exchange SET payload = (SELECT payload FROM exchange WHERE id = ?) WHERE id = ?`,
			func(a, b string) []any { return []any{b, a} }},
		{"KeyChanged", `UPDATE exchange SET idem_key = 'IN-other' WHERE id = ?`, func(a, _ string) []any { return []any{a} }},
		{"FlowChanged", `UPDATE exchange SET flow = 'F1d' WHERE id = ?`, func(a, _ string) []any { return []any{a} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, open)
			got := receive(t, s.db, inbound("IN-a", "h1"), inbound("IN-b", "h1"))
			a, b := got[0].ExchangeID, got[1].ExchangeID
			if _, err := s.db.SQL().ExecContext(ctx, s.db.Bind(tt.tamper), tt.args(a, b)...); err != nil {
				t.Fatal(err)
			}
			_, err := s.db.Get(ctx, a)
			wantCode(t, err, refbridge.EInternal)
			if bytes.Contains([]byte(err.Error()), []byte("Testchild")) {
				t.Fatal("decryption error quotes the payload")
			}
			if ex := get(t, s.db, b); ex.Payload == nil {
				t.Fatal("untouched row unreadable")
			}
			// A tampered exchange can still be dead-lettered.
			if _, err := s.db.Transition(ctx, a, store.Change{To: refbridge.StateDead, Reason: "payload_unreadable"}); err != nil {
				t.Fatalf("Transition of a tampered exchange: %v", err)
			}
		})
	}
}

func testQueueWorksExchange(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	worked := make(chan string, 16)
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
		ex, err := s.db.Get(ctx, job.Args.ExchangeID)
		if err != nil {
			return err
		}
		if _, err := s.db.Transition(ctx, ex.ID, store.Change{From: []refbridge.ExchangeState{refbridge.StateReceived}, To: refbridge.StateDone}); err != nil {
			return err
		}
		worked <- ex.ID
		return nil
	}))
	q, err := s.db.NewQueue(store.QueueConfig{Workers: workers, MaxWorkers: 2, JobTimeout: 10 * time.Second, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(stopCtx)
	})
	got := receive(t, s.db, inbound("IN-1", "h1"), inbound("IN-2", "h1"))
	want := map[string]bool{got[0].ExchangeID: true, got[1].ExchangeID: true}
	for range 2 {
		select {
		case id := <-worked:
			if !want[id] {
				t.Fatalf("worked unexpected or repeated exchange %s", id)
			}
			delete(want, id)
		case <-time.After(30 * time.Second):
			t.Fatalf("jobs not worked within 30s; left %v", want)
		}
	}
	for _, r := range got {
		if ex := get(t, s.db, r.ExchangeID); ex.State != refbridge.StateDone || ex.Payload != nil {
			t.Fatalf("exchange %s: state %s payload %v, want done and purged", ex.ID, ex.State, ex.Payload != nil)
		}
	}
	// The job carried the retry budget the queue was configured with.
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := jobsByExchange(t, q, rivertype.JobStateCompleted)
		if len(done) == 2 {
			if j := done[got[0].ExchangeID][0]; j.MaxAttempts != 3 {
				t.Fatalf("job max attempts = %d, want 3", j.MaxAttempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs not completed: %v", counts(jobsByExchange(t, q)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case id := <-worked:
		t.Fatalf("exchange %s worked twice", id)
	case <-time.After(200 * time.Millisecond):
	}
}

func testUniqueJobPerExchange(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	jobs := inspector(t, s.db)
	id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
	other := receive(t, s.db, inbound("IN-2", "h1"))[0].ExchangeID

	// A second enqueue while the first job is pending adds nothing.
	if _, err := s.db.Transition(ctx, id, store.Change{To: refbridge.StateReceived, Enqueue: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Insert(ctx, store.ProcessExchange{ExchangeID: id}, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := s.db.Requeue(ctx, store.Filter{State: refbridge.StateReceived}); err != nil || n != 0 {
		t.Fatalf("Requeue with jobs pending = %d, %v; want 0", n, err)
	}
	if c := counts(jobsByExchange(t, jobs)); c[id] != 1 || c[other] != 1 {
		t.Fatalf("jobs per exchange = %v, want one each", c)
	}

	// Once the job is finished, Requeue gives the exchange a new one.
	for _, j := range jobsByExchange(t, jobs, liveStates...)[id] {
		if _, err := jobs.JobCancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.db.Requeue(ctx, store.Filter{State: refbridge.StateReceived}); err != nil || n != 1 {
		t.Fatalf("Requeue after the job finished = %d, %v; want 1", n, err)
	}
	if live := jobsByExchange(t, jobs, liveStates...); len(live[id]) != 1 || len(live[other]) != 1 {
		t.Fatalf("live jobs = %v, want one each", counts(live))
	}
}

func testMigrateIdempotent(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	for range 2 {
		if n, err := s.db.Migrate(ctx); err != nil || n != 0 {
			t.Fatalf("Migrate on a current store = %d, %v; want 0", n, err)
		}
	}
	if ok, err := s.db.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("MigrationsCurrent = %v, %v; want true", ok, err)
	}
	if err := s.db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func testReopenKeepsEverything(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
	if err := s.db.SetCursor(ctx, "f2", "v1"); err != nil {
		t.Fatal(err)
	}
	path := s.db.Path()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	cfg.Path = path
	db := mustOpen(t, open, cfg)
	if ex := get(t, db, id); ex.ContentHash != "h1" || ex.Payload == nil {
		t.Fatalf("after reopen: %+v", ex)
	}
	if v, err := db.Cursor(ctx, "f2"); err != nil || v != "v1" {
		t.Fatalf("cursor after reopen = %q, %v", v, err)
	}
	if got := receive(t, db, inbound("IN-1", "h1"))[0]; got.Outcome != refbridge.IntakeDuplicate || got.ExchangeID != id {
		t.Fatalf("re-delivery after reopen = %v, want duplicate of %s", got, id)
	}
}

// startQueue starts a River client working ProcessExchange with work and
// stops it at cleanup.
func startQueue(t *testing.T, db *store.DB, work func(ctx context.Context, job *river.Job[store.ProcessExchange]) error) *river.Client[*sql.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(work))
	q, err := db.NewQueue(store.QueueConfig{Workers: workers, MaxWorkers: 2, JobTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(ctx)
	})
	return q
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testUpdateWhileRunningIsRequeued pins down a River property the engine
// must live with: an update received while the exchange's job is running
// cannot enqueue a second job (running is a required unique state), so the
// update waits for the safety net, Requeue.
func testUpdateWhileRunningIsRequeued(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	started := make(chan string, 4)
	release := make(chan struct{})
	q := startQueue(t, s.db, func(ctx context.Context, job *river.Job[store.ProcessExchange]) error {
		ex, err := s.db.Get(ctx, job.Args.ExchangeID)
		if err != nil {
			return err
		}
		started <- ex.ContentHash
		if ex.ContentHash == "h1" {
			<-release
		}
		return nil
	})
	id := receive(t, s.db, inbound("IN-1", "h1"))[0].ExchangeID
	select {
	case h := <-started:
		if h != "h1" {
			t.Fatalf("first run saw %s", h)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("job did not start")
	}
	if got := receive(t, s.db, inbound("IN-1", "h2"))[0]; got.Outcome != refbridge.IntakeUpdated {
		t.Fatalf("outcome = %s, want updated", got.Outcome)
	}
	live := jobsByExchange(t, q, liveStates...)[id]
	if len(live) != 1 || live[0].State != rivertype.JobStateRunning {
		t.Fatalf("live jobs during the run = %v, want only the running one", live)
	}
	close(release)
	waitFor(t, "the first job to complete", func() bool { return len(jobsByExchange(t, q, liveStates...)[id]) == 0 })
	if ex := get(t, s.db, id); ex.State != refbridge.StateReceived || ex.ContentHash != "h2" {
		t.Fatalf("exchange = %s/%s, want received with h2", ex.State, ex.ContentHash)
	}
	if n, err := s.db.Requeue(ctx, store.Filter{State: refbridge.StateReceived}); err != nil || n != 1 {
		t.Fatalf("Requeue = %d, %v; want 1", n, err)
	}
	select {
	case h := <-started:
		if h != "h2" {
			t.Fatalf("requeued run saw %s, want h2", h)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("requeued job did not run")
	}
}
