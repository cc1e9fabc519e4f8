package engine_test

// Clock jumps (issue #10, chaos): the engine, the store and River's queue
// share one clock that a test can set forward or back, as can Primero's and
// DTP's simulators, while traffic runs through all four flows. Each case
// checks the invariants the jumps threaten: every effect exactly once at the
// peers, nothing held, dead or stuck, the audit chain intact, and no
// personal data left once retention has passed.
//
// What the injected clock reaches, and what it cannot:
//   - The store takes it for every row time (updated_at, retention, audit)
//     and hands it to River (store.riverClock): River's SQL then uses it for
//     created_at and scheduled_at on insert, snooze and retry, attempted_at
//     and "due by now" at fetch, finalized_at, the scheduler that makes
//     scheduled jobs available, periodic jobs and the leader's term.
//   - River's rescuer of stuck jobs and its cleaners compare those stored
//     times with time.Now, not with the injected clock. A bridge clock set
//     forward therefore never makes a running job look stuck here (as it
//     would in production once the step exceeds RescueAfter), and one set
//     back makes every running job look hours old to the rescuer. These
//     harnesses set RescueAfter beyond the steps so the rescuer stays out;
//     docs/security.md ("A clock steps") says what a rescue in production
//     can cause.
//   - A job's timeout (context.WithTimeout), River's fetch and retry timers,
//     the circuit breakers and the peers' HTTP timeouts run on Go's
//     monotonic clock, which no step moves, in production as here. The
//     clocks below are time.Now plus an offset, and time.Add shifts the
//     monotonic reading too, so in-process durations computed from the
//     injected clock (the user cache's age, River's periodic schedule and
//     leader term) do see the steps here, which production's would not.
//     That makes these cases harsher, not milder, for those parts.

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
	"refbridge/internal/syncbuf"
	"refbridge/mapping"
	"refbridge/primero/primerotest"
	"refbridge/store"
)

// jumpClock is the real time plus an offset that a test steps.
type jumpClock struct {
	mu     sync.Mutex
	offset time.Duration
	// highest is the largest offset ever set: how far ahead of the real
	// time anything this clock stamped may be.
	highest time.Duration
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Jump steps the clock by d (back when negative), as an NTP step would.
func (c *jumpClock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	c.highest = max(c.highest, c.offset)
}

func (c *jumpClock) Highest() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.highest
}

// clockWorld is a harness on jumping clocks, the traffic sent through it
// and what the peers must end up with.
type clockWorld struct {
	*harness
	bridgeClock, primeroClock, dtpClock *jumpClock
	rng                                 *rand.Rand
	logs                                *syncbuf.Buffer

	next          int      // numbers the next intervention and referral
	interventions []string // F1: intervention numbers sent by DTP
	decided       []string // F1d: those a case worker accepted in Primero
	referrals     []string // F2: org-referral ids referred in Primero
	answered      []string // F2d: those UNHCR decided through DTP
	caseOf        map[string]string
}

// clockRetention is how long the store keeps a finished exchange's payload
// in these cases: shorter than the steps, so the steps cross it.
const clockRetention = time.Hour

func newClockWorld(t *testing.T, seed uint64) *clockWorld {
	t.Helper()
	w := &clockWorld{bridgeClock: &jumpClock{}, primeroClock: &jumpClock{}, dtpClock: &jumpClock{},
		rng: rand.New(rand.NewPCG(seed, 0xc10c)), logs: &syncbuf.Buffer{}, caseOf: map[string]string{}}
	w.harness = newHarness(t, withRetention(clockRetention), withClocks(w.bridgeClock.Now, w.primeroClock.Now, w.dtpClock.Now),
		// Enough attempts that a peer down across a step is waited for, not
		// dead-lettered; the backoff stays short.
		withRetry(refbridge.RetryPolicy{MaxAttempts: 1000, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}),
		withRescueAfter(48*time.Hour), // the rescuer runs on the real clock (see above)
		withLogger(slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	// The periodic sweep, as `serve` runs it each minute. Its River schedule
	// would follow the injected clock, and a step back would hold it for
	// the step: it runs here on the real clock, as production's timers do.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := w.eng.Sweep(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("sweep: %v", err)
				}
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

// sendInterventions has DTP post n new interventions (F1), each for its own child.
func (w *clockWorld) sendInterventions(n int) {
	w.t.Helper()
	base := fixture[refbridge.InterventionBatch](w.t, "dtp-interventions-inbound.json").Interventions[0]
	rows := make([]refbridge.Intervention, n)
	for i := range rows {
		w.next++
		rows[i] = base
		rows[i].InterventionNumber = fmt.Sprintf("TST-24-PRTITV-%07d", 1000+w.next)
		rows[i].IndividualID = fmt.Sprintf("TST-%08d", 1000+w.next)
		w.interventions = append(w.interventions, rows[i].InterventionNumber)
	}
	for i, o := range w.receiveInterventions(rows...) {
		if o != refbridge.IntakeAccepted {
			w.t.Fatalf("intervention %s: intake %q, want accepted", rows[i].InterventionNumber, o)
		}
	}
}

// referCases has case workers refer n new cases' services to UNHCR (F2).
func (w *clockWorld) referCases(n int) {
	w.t.Helper()
	for range n {
		w.next++
		id, _, orgID := w.seedReferredCase(fmt.Sprintf("TST-%08d", 5000+w.next), true)
		w.referrals = append(w.referrals, orgID)
		w.caseOf[orgID] = id
	}
}

// decideServices has a case worker accept, in Primero, the services of the
// interventions done so far that have no decision yet (F1d).
func (w *clockWorld) decideServices() {
	w.t.Helper()
	done := map[string]bool{}
	for _, n := range w.decided {
		done[n] = true
	}
	for _, n := range w.interventions {
		if done[n] {
			continue
		}
		ex := w.waitFor(refbridge.FlowIntervention, n, refbridge.StateDone)
		if err := w.primero.DecideService(ex.PeerRef, mapping.ServiceUniqueID(w.profile.SiteID(), n), caseWorker, "accepted", ""); err != nil {
			w.t.Fatal(err)
		}
		w.decided = append(w.decided, n)
	}
}

// answerReferrals has DTP post UNHCR's acceptance of the referrals it has
// received and not answered yet (F2d).
func (w *clockWorld) answerReferrals() {
	w.t.Helper()
	done := map[string]bool{}
	for _, id := range w.answered {
		done[id] = true
	}
	var ds []refbridge.ReferralDecision
	for _, id := range w.referrals {
		if done[id] {
			continue
		}
		w.awaitingDecision(id)
		ds = append(ds, refbridge.ReferralDecision{OrgReferralID: id, ReviewDecision: "125080000"})
		w.answered = append(w.answered, id)
	}
	if len(ds) > 0 {
		w.receiveDecisions(ds...)
	}
}

// awaitingDecision waits until DTP has the referral and Primero shows it.
func (w *clockWorld) awaitingDecision(orgID string) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ex := w.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered, refbridge.StateDone)
		if ex.State == refbridge.StateDone || ex.Reason == "awaiting_decision" {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("referral %s: reason %q, want awaiting_decision", orgID, ex.Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// round sends a little of every flow: new interventions and referrals, the
// decisions on what earlier rounds delivered, and a poll of Primero.
func (w *clockWorld) round() {
	w.t.Helper()
	w.sendInterventions((1 + w.rng.IntN(3)) * *clockJumpScale)
	w.referCases((1 + w.rng.IntN(2)) * *clockJumpScale)
	w.poll()
}

// clockJumpScale multiplies the traffic of each round: CI runs the reduced
// size, `-clockjump.scale 25` the full one (hundreds of exchanges per case).
var clockJumpScale = flag.Int("clockjump.scale", 1, "traffic per round of TestClockJumps, as a multiple of the reduced size")

// finish decides everything still undecided and polls until all is done.
func (w *clockWorld) finish() {
	w.t.Helper()
	w.decideServices()
	w.poll()
	w.answerReferrals()
	for _, n := range w.decided {
		w.waitFor(refbridge.FlowServiceDecision, n+"#accepted", refbridge.StateDone)
	}
	for _, id := range w.answered {
		w.waitFor(refbridge.FlowReferralDecision, id, refbridge.StateDone)
		w.waitFor(refbridge.FlowReferral, id, refbridge.StateDone)
	}
}

// check asserts the invariants at the end of a case.
func (w *clockWorld) check() {
	w.t.Helper()
	t, ctx := w.t, context.Background()

	// Every exchange rests in done: nothing held, dead, failed or moving,
	// and none more than the traffic made.
	all, total, err := w.db.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(w.interventions) + len(w.decided) + len(w.referrals) + len(w.answered); total != want {
		t.Errorf("%d exchanges, want %d (one per message of the traffic)", total, want)
	}
	for _, ex := range all {
		if ex.State != refbridge.StateDone {
			t.Errorf("%s %s rests in %s (%s), want done", ex.Flow, ex.Key, ex.State, ex.Reason)
		}
	}
	// Nothing left in the queue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := w.queue.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateAvailable, rivertype.JobStateScheduled,
			rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStatePending).First(10))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Jobs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d jobs left in the queue, first %s in %s scheduled %v", len(res.Jobs), res.Jobs[0].Kind, res.Jobs[0].State, res.Jobs[0].ScheduledAt)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Exactly once at DTP: one acknowledgement callback per intervention,
	// one decision per service decided, one referral per referral.
	statuses := w.dtp.StatusCounts()
	for _, n := range w.interventions {
		if c := statuses[dtptest.StatusKey{InterventionNumber: n, Status: refbridge.StatusPendingAcknowledgement}]; c != 1 {
			t.Errorf("intervention %s: %d acknowledgement callbacks, want 1", n, c)
		}
	}
	for _, n := range w.decided {
		if c := statuses[dtptest.StatusKey{InterventionNumber: n, Status: refbridge.StatusAcknowledged}]; c != 1 {
			t.Errorf("service decision on %s sent %d times, want 1", n, c)
		}
	}
	if got, want := len(w.dtp.Statuses()), len(w.interventions)+len(w.decided); got != want {
		t.Errorf("DTP received %d status messages, want %d", got, want)
	}
	counts := w.dtp.ReferralCounts()
	for _, id := range w.referrals {
		if counts[id] != 1 {
			t.Errorf("referral %s sent %d times, want 1", id, counts[id])
		}
	}
	if got := len(w.dtp.Referrals()); got != len(w.referrals) {
		t.Errorf("DTP received %d referrals, want %d", got, len(w.referrals))
	}

	// Exactly once at Primero: one case and one service per intervention,
	// one decision written per referral UNHCR answered.
	if got, want := len(w.primero.CaseIDs()), len(w.interventions)+len(w.referrals); got != want {
		t.Errorf("Primero holds %d cases, want %d (one per intervention, one per referred case)", got, want)
	}
	for _, n := range w.interventions {
		ex, err := w.db.GetByKey(ctx, refbridge.FlowIntervention, n)
		if err != nil {
			t.Fatal(err)
		}
		if services, _ := w.primero.Case(ex.PeerRef)["services_section"].([]any); len(services) != 1 {
			t.Errorf("intervention %s: its case has %d services, want 1", n, len(services))
		}
	}
	patches := 0
	for _, wr := range w.primero.Writes() {
		if wr.Pattern == primerotest.PatternPatchReferral {
			patches++
		}
	}
	if patches != len(w.answered) {
		t.Errorf("%d referral decisions written to Primero, want %d", patches, len(w.answered))
	}
	for _, id := range w.answered {
		for _, r := range w.primero.Referrals(w.caseOf[id]) {
			if r.Status != refbridge.ReferralAccepted {
				t.Errorf("referral %s is %q in Primero, want accepted", id, r.Status)
			}
		}
	}

	if _, err := w.db.VerifyAudit(ctx); err != nil {
		t.Errorf("audit chain: %v", err)
	}

	// No personal data once retention has passed on the bridge's clock. A
	// payload's retention runs from when it ended on that clock: an exchange
	// that ended while the clock was ahead is kept until the clock is that
	// far ahead again (the bound: retention plus a step since taken back).
	w.bridgeClock.Jump(w.bridgeClock.Highest() - w.bridgeClock.offsetNow() + clockRetention + time.Minute)
	if _, err := w.db.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ex := range all {
		got, err := w.db.Get(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Payload != nil || got.PurgedAt.IsZero() {
			t.Errorf("%s %s still holds its payload after retention", ex.Flow, ex.Key)
		}
	}
	// The logs carry ids and codes, never the children's data.
	for _, pii := range []string{"Testchild", "Fixture", "2014-03-15", "+000000000001", "Test Camp", "Synthetic referral notes"} {
		if strings.Contains(w.logs.String(), pii) {
			t.Errorf("the engine's log holds personal data %q", pii)
		}
	}
}

func (c *jumpClock) offsetNow() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// purgedInterventions reports whether the F1 exchanges of numbers have all
// lost their payloads.
func (w *clockWorld) purgedInterventions(numbers []string) bool {
	w.t.Helper()
	for _, n := range numbers {
		ex, err := w.db.GetByKey(context.Background(), refbridge.FlowIntervention, n)
		if err != nil {
			w.t.Fatal(err)
		}
		if ex.Payload != nil {
			return false
		}
	}
	return true
}

func TestClockJumps(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CLOCKJUMP_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CLOCKJUMP_SEED: %v", err)
		}
	}
	t.Logf("seed %d (CLOCKJUMP_SEED=%[1]d repeats it)", seed)
	hours := func(rng *rand.Rand, lo, hi int) time.Duration {
		return time.Duration(lo)*time.Hour + time.Duration(rng.Int64N(int64(hi-lo)*int64(time.Hour)))
	}
	cases := []struct {
		name string
		run  func(t *testing.T, w *clockWorld)
	}{{
		// Forward past the job timeout, rescue-after, retention and user
		// cache TTL while exchanges are moving, then back (an NTP step
		// correcting it) while others are.
		name: "bridge forward then back",
		run: func(t *testing.T, w *clockWorld) {
			w.round()
			w.decideServices()
			w.poll()
			w.answerReferrals()
			before := append([]string(nil), w.interventions...)
			for _, n := range before {
				w.waitFor(refbridge.FlowIntervention, n, refbridge.StateDone)
			}
			step := hours(w.rng, 3, 8)
			t.Logf("bridge clock +%s", step)
			w.round() // in flight across the step
			w.bridgeClock.Jump(step)
			w.round()
			// Retention has passed on the bridge's clock for what ended before.
			if _, err := w.db.Purge(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !w.purgedInterventions(before) {
				t.Error("payloads ended before a step past retention survived the purge")
			}
			w.decideServices()
			w.poll()
			w.sendInterventions(2)
			w.bridgeClock.Jump(-step)
			t.Logf("bridge clock -%s", step)
			w.round()
			w.finish()
		},
	}, {
		// Back by hours while retries wait, and it stays back: the retries
		// scheduled before the step must not wait it out.
		name: "bridge back and stays",
		run: func(t *testing.T, w *clockWorld) {
			w.round()
			w.answerReferrals()
			w.decideServices()
			// DTP down: callbacks, decisions and referrals wait in backoff.
			w.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{503}})
			w.sendInterventions(3)
			w.referCases(1)
			w.poll()
			for _, n := range w.interventions[len(w.interventions)-3:] {
				for ex := w.waitFor(refbridge.FlowIntervention, n, refbridge.StateDelivered); ex.LastError == ""; {
					time.Sleep(10 * time.Millisecond)
					ex = w.waitFor(refbridge.FlowIntervention, n, refbridge.StateDelivered)
				}
			}
			step := hours(w.rng, 2, 6)
			t.Logf("bridge clock -%s", step)
			w.bridgeClock.Jump(-step)
			w.dtp.Faults().Clear()
			// Everything completes within the harness's bound (waitFor's 30 s
			// real time), not after the step.
			w.round()
			w.finish()
		},
	}, {
		// Primero's clock set back by more than the poll overlap: cases
		// saved afterwards are stamped before the poll cursor.
		name: "primero back",
		run: func(t *testing.T, w *clockWorld) {
			w.round()
			w.decideServices()
			w.poll()
			w.answerReferrals()
			step := hours(w.rng, 1, 5)
			t.Logf("primero clock -%s", step)
			w.primeroClock.Jump(-step)
			w.round() // referrals saved after the step: found by this round's poll
			w.finish()
			if !strings.Contains(w.logs.String(), "primero clock went back") {
				t.Error("the step back of Primero's clock was not logged")
			}
		},
	}, {
		// Primero's clock runs ahead, then is corrected: the cursor is left
		// in the future of every stamp after the correction.
		name: "primero forward then corrected",
		run: func(t *testing.T, w *clockWorld) {
			w.round()
			step := hours(w.rng, 2, 6)
			t.Logf("primero clock +%s", step)
			w.primeroClock.Jump(step)
			w.round()
			w.decideServices()
			w.poll()
			w.answerReferrals()
			t.Logf("primero clock -%s", step)
			w.primeroClock.Jump(-step)
			w.round()
			w.finish()
			if !strings.Contains(w.logs.String(), "primero clock went forward") || !strings.Contains(w.logs.String(), "primero clock went back") {
				t.Error("Primero's steps were not logged")
			}
		},
	}, {
		// All three clocks step apart mid-traffic and are corrected. DTP's
		// clock only stamps what DTP receives (the bridge never reads a DTP
		// time), so its steps must change nothing.
		name: "all clocks apart",
		run: func(t *testing.T, w *clockWorld) {
			w.round()
			b, p, d := hours(w.rng, 2, 4), hours(w.rng, 1, 3), hours(w.rng, 4, 8)
			t.Logf("bridge +%s, primero -%s, dtp +%s", b, p, d)
			w.sendInterventions(2)
			w.bridgeClock.Jump(b)
			w.primeroClock.Jump(-p)
			w.dtpClock.Jump(d)
			w.round()
			w.decideServices()
			w.poll()
			w.answerReferrals()
			w.bridgeClock.Jump(-b)
			w.primeroClock.Jump(p)
			w.dtpClock.Jump(-2 * d)
			w.round()
			w.finish()
		},
	}}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newClockWorld(t, seed+uint64(i))
			tc.run(t, w)
			w.check()
		})
	}
}
