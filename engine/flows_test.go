package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
	"refbridge/mapping"
	"refbridge/primero/primerotest"
)

// TestInterventionFlow runs F1 end to end: the fixture batch's valid
// interventions become one case service each and a Pending Acknowledgement
// callback; the invalid one a Delivery Fail naming the missing field.
func TestInterventionFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	batch := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json")
	h.receiveInterventions(batch.Interventions...)

	ok := h.waitFor(refbridge.FlowIntervention, "TST-24-PRTITV-0000001", refbridge.StateDone)
	bad := h.waitFor(refbridge.FlowIntervention, "TST-24-PRTITV-0000002", refbridge.StateFailed)
	h.waitFor(refbridge.FlowIntervention, "TST-24-PRTITV-0000003", refbridge.StateDone)

	c := h.primero.Case(ok.PeerRef)
	if c["unhcr_individual_no"] != "TST-00000001" || c["owned_by"] != h.profile.Intake().Owner {
		t.Fatalf("case not created for the child or not owned by the intake user: owner %v", c["owned_by"])
	}
	services, _ := c["services_section"].([]any)
	if len(services) != 1 {
		t.Fatalf("case has %d services, want 1", len(services))
	}
	if ok.Payload != nil || bad.Payload != nil {
		t.Fatal("payload not purged when the exchange completed")
	}
	if !hasProblem(bad.Problems, "individuals.progres_familyname", "required") {
		t.Fatalf("problems %+v do not name the missing family name", bad.Problems)
	}

	counts := h.dtp.StatusCounts()
	for _, k := range []dtptest.StatusKey{
		{InterventionNumber: "TST-24-PRTITV-0000001", Status: refbridge.StatusPendingAcknowledgement},
		{InterventionNumber: "TST-24-PRTITV-0000003", Status: refbridge.StatusPendingAcknowledgement},
		{InterventionNumber: "TST-24-PRTITV-0000002", Status: refbridge.StatusDeliveryFail},
	} {
		if counts[k] != 1 {
			t.Errorf("callback %+v sent %d times, want 1", k, counts[k])
		}
	}
	for _, s := range h.dtp.Statuses() {
		if s.Status == refbridge.StatusDeliveryFail && !strings.Contains(s.ClosureReason, "progres_familyname") {
			t.Errorf("failure callback reason %q does not name the missing field", s.ClosureReason)
		}
	}
}

// TestInterventionRedeliveryMergesNotDoubles re-delivers an intervention
// (same content: duplicate) and then changed content for the same number
// (an update): the case keeps one service, one case exists.
func TestInterventionRedeliveryMergesNotDoubles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	h.receiveInterventions(iv)
	first := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDone)

	if got := h.receiveInterventions(iv); got[0] != refbridge.IntakeDuplicate {
		t.Fatalf("re-delivery outcome %q, want duplicate", got[0])
	}
	changed := iv
	changed.InterventionDesc = "<p>Synthetic updated description</p>"
	if got := h.receiveInterventions(changed); got[0] != refbridge.IntakeUpdated {
		t.Fatalf("changed content outcome %q, want updated", got[0])
	}
	h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDone)

	// A second intervention for the same child lands in the same case.
	other := iv
	other.InterventionNumber = "TST-24-PRTITV-0000009"
	h.receiveInterventions(other)
	second := h.waitFor(refbridge.FlowIntervention, other.InterventionNumber, refbridge.StateDone)
	if second.PeerRef != first.PeerRef || len(h.primero.CaseIDs()) != 1 {
		t.Fatalf("second intervention made another case (%s vs %s, %d cases)", second.PeerRef, first.PeerRef, len(h.primero.CaseIDs()))
	}
	services, _ := h.primero.Case(first.PeerRef)["services_section"].([]any)
	if len(services) != 2 {
		t.Fatalf("case has %d services, want 2 (one per intervention)", len(services))
	}
}

// TestUpsertNeverTakesTheCaseAway files an intervention into a case a case
// worker owns and closed: owner and status stay, a differing name is only
// reported, empty identity fields are filled.
func TestUpsertNeverTakesTheCaseAway(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	id := h.primero.SeedCase(map[string]any{"owned_by": caseWorker, "status": "closed", "module_id": "primeromodule-cp",
		"unhcr_individual_no": iv.IndividualID, "name_first": "Different"})
	h.receiveInterventions(iv)
	ex := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDone)
	c := h.primero.Case(id)
	if ex.PeerRef != id || c["owned_by"] != caseWorker || c["status"] != "closed" || c["name_first"] != "Different" {
		t.Fatalf("case changed hands or values: owner %v status %v", c["owned_by"], c["status"])
	}
	if c["name_last"] != iv.FamilyName {
		t.Fatal("empty identity field not filled")
	}
	if !hasProblem(ex.Problems, "name_first", "differs") {
		t.Fatalf("differing name not reported: %+v", ex.Problems)
	}
	for _, s := range h.dtp.Statuses() {
		if s.PrimeroUser == nil || *s.PrimeroUser != caseWorker {
			t.Fatalf("callback names %v as the case's user, want the case worker", s.PrimeroUser)
		}
	}
}

// TestSeveralCasesAreHeld never picks "the first" of several matching cases.
func TestSeveralCasesAreHeld(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	for range 2 {
		h.primero.SeedCase(map[string]any{"owned_by": caseWorker, "unhcr_individual_no": iv.IndividualID})
	}
	h.receiveInterventions(iv)
	ex := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateHeld)
	if ex.Reason != "multiple_cases" || len(h.dtp.Received()) != 0 {
		t.Fatalf("reason %q, %d DTP messages; want multiple_cases and none", ex.Reason, len(h.dtp.Received()))
	}
}

// TestReferralFlowAndDecision runs F2 and F2d: a service referred to UNHCR
// is polled, sent to DTP once, the case shows it was; UNHCR's decision
// accepts the Primero referral and ends both exchanges.
func TestReferralFlowAndDecision(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id, svc, orgID := h.seedReferredCase("TST-00000001", true)
	h.poll()
	ex := h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	for ex.Reason != "awaiting_decision" {
		ex = h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	}
	if n := h.dtp.ReferralCounts()[orgID]; n != 1 {
		t.Fatalf("referral sent %d times, want 1", n)
	}
	if log := h.primero.SyncLog(id); len(log) == 0 {
		t.Fatal("no sync status written back to the case")
	}
	h.poll() // a second poll finds the same referral: nothing new is sent
	if n := h.dtp.ReferralCounts()[orgID]; n != 1 {
		t.Fatalf("after re-poll referral sent %d times, want 1", n)
	}

	h.receiveDecisions(refbridge.ReferralDecision{OrgReferralID: orgID, ReviewDecision: "125080000"})
	h.waitFor(refbridge.FlowReferralDecision, orgID, refbridge.StateDone)
	h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDone)
	for _, r := range h.primero.Referrals(id) {
		if r.ServiceRecordID == svc && r.Status != refbridge.ReferralAccepted {
			t.Fatalf("referral status %q, want accepted", r.Status)
		}
	}
}

// TestReferralHeldUntilConsent holds a referral whose consent was withdrawn
// before it was sent, and releases it when consent is recorded again.
func TestReferralHeldUntilConsent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id, _, orgID := h.seedReferredCase("TST-00000002", true)
	if err := h.primero.SetConsent(id, caseWorker, false, false); err != nil {
		t.Fatal(err)
	}
	h.poll()
	held := h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateHeld)
	if held.Reason != "consent_missing" || len(h.dtp.Referrals()) != 0 {
		t.Fatalf("reason %q with %d referrals sent; want consent_missing and none", held.Reason, len(h.dtp.Referrals()))
	}
	if err := h.primero.SetConsent(id, caseWorker, true, true); err != nil {
		t.Fatal(err)
	}
	h.poll()
	h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	if n := h.dtp.ReferralCounts()[orgID]; n != 1 {
		t.Fatalf("released referral sent %d times, want 1", n)
	}
}

// TestServiceDecisionFlow runs F1d: a case worker's acceptance of a service
// that came from proGres reaches DTP once; other services never do.
func TestServiceDecisionFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	h.receiveInterventions(iv)
	ex := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDone)
	svc := mapping.ServiceUniqueID(h.profile.SiteID(), iv.InterventionNumber)
	if err := h.primero.DecideService(ex.PeerRef, svc, caseWorker, "accepted", ""); err != nil {
		t.Fatal(err)
	}
	h.poll()
	h.waitFor(refbridge.FlowServiceDecision, iv.InterventionNumber+"#accepted", refbridge.StateDone)
	h.poll()
	key := dtptest.StatusKey{InterventionNumber: iv.InterventionNumber, Status: refbridge.StatusAcknowledged}
	if n := h.dtp.StatusCounts()[key]; n != 1 {
		t.Fatalf("decision sent %d times, want 1", n)
	}
}

// TestPeerDownThenBack keeps every exchange queued and visible while DTP
// is down, and delivers each exactly once when it is back.
func TestPeerDownThenBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{503}})
	batch := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json")
	h.receiveInterventions(batch.Interventions[0])
	ex := h.waitFor(refbridge.FlowIntervention, batch.Interventions[0].InterventionNumber, refbridge.StateDelivered)
	for ex.Attempts == 0 {
		ex = h.waitFor(refbridge.FlowIntervention, batch.Interventions[0].InterventionNumber, refbridge.StateDelivered)
	}
	if ex.LastError != refbridge.ETransient {
		t.Fatalf("last error %q, want transient", ex.LastError)
	}
	h.dtp.Faults().Clear()
	h.waitFor(refbridge.FlowIntervention, batch.Interventions[0].InterventionNumber, refbridge.StateDone)
	key := dtptest.StatusKey{InterventionNumber: batch.Interventions[0].InterventionNumber, Status: refbridge.StatusPendingAcknowledgement}
	if n := h.dtp.StatusCounts()[key]; n != 1 {
		t.Fatalf("callback delivered %d times, want 1", n)
	}
}

// TestCaseUpdatedDuringPollIsPickedUpNext saves a case between the poll's
// read and its cursor write; the next poll must still see it.
func TestCaseUpdatedDuringPollIsPickedUpNext(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seedReferredCase("TST-00000003", true)
	// The poll reads the cases page; a referral is made while it runs.
	var orgID string
	h.primero.Faults().Set(primerotest.PatternListCases, fault.Rule{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, orgID = h.seedReferredCase("TST-00000004", true)
	}()
	h.poll()
	<-done
	h.poll()
	h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
}

func hasProblem(ps []refbridge.Problem, field, rule string) bool {
	for _, p := range ps {
		if strings.HasSuffix(p.Field, field) && p.Rule == rule {
			return true
		}
	}
	return false
}

// TestConsentWithdrawnAfterSendingStopsEverything withdraws consent after
// the referral reached DTP: it is never sent again, even when consent comes
// back, and UNHCR's later decision is held instead of exchanged.
func TestConsentWithdrawnAfterSendingStopsEverything(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id, _, orgID := h.seedReferredCase("TST-00000006", true)
	h.poll()
	h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	if err := h.primero.SetConsent(id, caseWorker, false, false); err != nil {
		t.Fatal(err)
	}
	h.poll()
	ex := h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	if ex.Reason != "consent_withdrawn" {
		t.Fatalf("reason %q after withdrawal, want consent_withdrawn", ex.Reason)
	}
	if err := h.primero.SetConsent(id, caseWorker, true, true); err != nil {
		t.Fatal(err)
	}
	h.poll()
	h.receiveDecisions(refbridge.ReferralDecision{OrgReferralID: orgID, ReviewDecision: "125080000"})
	d := h.waitFor(refbridge.FlowReferralDecision, orgID, refbridge.StateHeld)
	if d.Reason != "consent_withdrawn" {
		t.Fatalf("decision reason %q, want consent_withdrawn", d.Reason)
	}
	if n := h.dtp.ReferralCounts()[orgID]; n != 1 {
		t.Fatalf("referral sent %d times, want 1", n)
	}
	for _, r := range h.primero.Referrals(id) {
		if r.Status != refbridge.ReferralInProgress {
			t.Fatalf("referral moved to %q after consent was withdrawn", r.Status)
		}
	}
}

// TestPollKeepsItsProgress: a walk that cannot finish in one poll (here each
// poll is cancelled once it has read 150 cases' referrals; in the field a
// peer fault or the job's timeout on a long backlog cuts it short) still
// moves the cursor over what it stored, so the next polls go on from there
// and the backlog drains, instead of every poll starting the whole walk
// again and failing the same way (which would spend all the polls allowed).
func TestPollKeepsItsProgress(t *testing.T) {
	t.Parallel()
	// All cases are made within a few seconds: the default overlap (10 min)
	// would have every poll read them all again, whatever the cursor.
	h := newHarness(t, withPollOverlap(time.Millisecond))
	const cases, perPoll, allowed = 600, 150, 30
	orgIDs := make([]string, cases)
	for i := range orgIDs {
		_, _, orgIDs[i] = h.seedReferredCase(fmt.Sprintf("TST-P%07d", i), true)
	}
	reads := func() int { return h.primero.Requests(primerotest.PatternListReferrals) }
	polls, failed := 0, 0
	for ; polls < allowed; polls++ {
		if err := pollCutAfter(h, reads, perPoll); err == nil {
			break
		}
		failed++
	}
	if failed == 0 || polls == allowed {
		t.Fatalf("%d polls, %d cut short: want some cut short, then one that finishes", polls, failed)
	}
	// Each case is read twice at most (the bridge's own update of a case
	// once its referral reached DTP re-stamps it), plus what a cut-short
	// poll reads again after its last checkpoint; restarting would cost a
	// whole walk per failed poll.
	if n := reads(); n > 2*cases+failed*checkpointOverRead {
		t.Errorf("%d referral reads for %d cases over %d polls: the walks started again", n, cases, polls+1)
	}
	for _, id := range orgIDs {
		h.waitFor(refbridge.FlowReferral, id, refbridge.StateDelivered)
	}
	t.Logf("%d polls (%d cut short), %d referral reads for %d cases", polls+1, failed, reads(), cases)
}

// pollCutAfter runs one poll, cancelled once it has read n cases'
// referrals.
func pollCutAfter(h *harness, reads func() int, n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := reads() + n
	go func() {
		for ctx.Err() == nil && reads() < stop {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := h.eng.Poll(ctx)
	return err
}

// checkpointOverRead bounds the cases a cut-short poll reads again: those
// after its last checkpoint (the engine's checkpointCases).
const checkpointOverRead = 100

// TestPollKeepsItsProgressOnASlowPeer: when each read is slow (a failing
// peer, retries) a poll cut short by the job's timeout may walk far fewer
// cases than a count checkpoint needs; the checkpoint every second still
// moves the cursor, so the backlog drains.
func TestPollKeepsItsProgressOnASlowPeer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withPollOverlap(time.Millisecond))
	const cases, allowed = 12, 40
	orgIDs := make([]string, cases)
	for i := range orgIDs {
		_, _, orgIDs[i] = h.seedReferredCase(fmt.Sprintf("TST-S%07d", i), true)
	}
	h.primero.Faults().Set(primerotest.PatternListReferrals, fault.Rule{Latency: 250 * time.Millisecond})
	polls := 0
	for ; polls < allowed; polls++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.eng.Poll(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	if polls == 0 || polls == allowed {
		t.Fatalf("%d polls cut short of %d allowed: want some, then one that finishes", polls, allowed)
	}
	for _, id := range orgIDs {
		h.waitFor(refbridge.FlowReferral, id, refbridge.StateDelivered)
	}
	t.Logf("%d polls cut short, then one finished", polls)
}
