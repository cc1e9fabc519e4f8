package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"refbridge"
	"refbridge/engine"
	"refbridge/mapping"
	"refbridge/server"
	"refbridge/store"
)

// traffic is the demo's synthetic load: what it sent, to compare later
// with what the simulators hold.
type traffic struct {
	d   *demo
	n   int
	out io.Writer

	interventions []string          // F1 numbers sent, each once
	invalid       map[string]bool   // F1 numbers sent without a family name
	referrals     map[string]string // F2 org-referral id → case record id
	withdrawn     map[string]bool   // F2 referrals whose consent was withdrawn before sending
	consentLater  map[string]bool   // … of which consent is given again later (released)
	overridden    map[string]bool   // F2 referrals made with a consent override instead of consent
	withdrawAfter map[string]bool   // F2 referrals whose consent is withdrawn once they reached DTP
	decided       map[string]string // F1d intervention number → decision
	answered      map[string]string // F2d org-referral id → review decision code
}

// run sends everything and waits until the bridge has settled each phase.
func (t *traffic) run(ctx context.Context) error {
	t.invalid, t.referrals, t.withdrawn = map[string]bool{}, map[string]string{}, map[string]bool{}
	t.consentLater, t.overridden, t.withdrawAfter = map[string]bool{}, map[string]bool{}, map[string]bool{}
	t.decided, t.answered = map[string]string{}, map[string]string{}
	if err := t.sendInterventions(ctx); err != nil {
		return err
	}
	if err := t.makeReferrals(); err != nil {
		return err
	}
	if err := t.settle(ctx, "interventions and referrals", func(c counts) bool {
		return c.resting(refbridge.FlowIntervention) == len(t.interventions) && c.resting(refbridge.FlowReferral) == len(t.referrals)
	}); err != nil {
		return err
	}
	if err := t.changeConsent(); err != nil {
		return err
	}
	if err := t.settle(ctx, "consent changes", t.consentSettled(ctx)); err != nil {
		return err
	}
	if err := t.decideServices(ctx); err != nil {
		return err
	}
	if err := t.answerReferrals(ctx); err != nil {
		return err
	}
	return t.settle(ctx, "decisions", func(c counts) bool {
		return c.resting(refbridge.FlowServiceDecision) == len(t.decided) && c.resting(refbridge.FlowReferralDecision) == len(t.answered)
	})
}

// intervention is a synthetic proGres intervention; no real person.
func (t *traffic) intervention(i int) refbridge.Intervention {
	services := t.d.profile.Services()
	var inbound []string
	for _, s := range services {
		if s.Progres != "" {
			inbound = append(inbound, s.Progres)
		}
	}
	lookup := func(name string) *refbridge.Lookup {
		return &refbridge.Lookup{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), LogicalName: "progres_registrationgroup", Name: name, KeyAttributes: []json.RawMessage{}}
	}
	iv := refbridge.Intervention{
		InterventionNumber: fmt.Sprintf("DEMO-26-PRTITV-%07d", i), InterventionStartDate: "2026-11-01T00:00:00Z",
		InterventionType: inbound[i%len(inbound)], InterventionDesc: "<p>Synthetic demo referral</p>",
		ReasonForReferral: `[{"CreatedBy":"Demo Officer","Text":"Synthetic reason","CreatedOn":"2026-11-01T08:00:00Z"}]`,
		UserTitle:         "Demo Protection Officer", UserEmail: "demo.officer@example.org",
		IndividualID: fmt.Sprintf("DEMO-%08d", i), RegistrationGroup: lookup(fmt.Sprintf("DEMO-26-%05d", i)),
		GivenName: fmt.Sprintf("Demochild%d", i), FamilyName: "Synthetic", DateOfBirth: "2015-02-28T00:00:00Z",
		Sex: []string{"125080000", "125080001"}[i%2],
	}
	return iv
}

func (t *traffic) sendInterventions(ctx context.Context) error {
	var batch []refbridge.Intervention
	post := func() error {
		if len(batch) == 0 {
			return nil
		}
		reply, err := t.d.dtp.PostInterventions(ctx, t.d.bridgeURL+server.RouteInterventions, t.d.token,
			refbridge.InterventionBatch{Interventions: batch, RequestType: refbridge.RequestTypeOutgoingReferral})
		if err != nil {
			return fmt.Errorf("demo: post interventions: %w", err)
		}
		if reply.Status != 200 {
			return fmt.Errorf("demo: bridge answered %d to an intervention batch", reply.Status)
		}
		batch = batch[:0]
		return nil
	}
	for i := 1; i <= t.n; i++ {
		iv := t.intervention(i)
		if i%10 == 0 { // a tenth lack a required field: DTP must hear why
			iv.FamilyName = ""
			t.invalid[iv.InterventionNumber] = true
		}
		t.interventions = append(t.interventions, iv.InterventionNumber)
		batch = append(batch, iv)
		if i%7 == 0 { // DTP re-delivers some: they must not become second services
			batch = append(batch, iv)
		}
		if len(batch) >= 25 {
			if err := post(); err != nil {
				return err
			}
		}
	}
	if err := post(); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "F1  sent %d interventions (%d invalid, duplicates re-posted)\n", len(t.interventions), len(t.invalid))
	return nil
}

// makeReferrals acts as Primero case workers referring services to UNHCR.
// Of every eight children, one's consent is withdrawn before the bridge can
// send the referral (every other such child's consent is given again later),
// one is referred with a consent override instead of consent (which the
// Gambella profile does not accept), and one's consent is withdrawn once the
// referral has reached UNHCR.
func (t *traffic) makeReferrals() error {
	p := t.d.primero
	for i := 1; i <= max(1, t.n/2); i++ {
		override := i%8 == 4
		id := p.SeedCase(map[string]any{
			"owned_by": demoCaseWorker, "owned_by_agency_id": "UNICEF", "module_id": "primeromodule-cp", "status": "open",
			"name_first": fmt.Sprintf("Democase%d", i), "name_last": "Synthetic", "date_of_birth": "2013-06-30", "sex": "male",
			"unhcr_individual_no": fmt.Sprintf("DEMO-R-%07d", i), "unhcr_id_no": "DEMO-26-R", "language": []any{"language2"},
			"address_current": "Demo camp", "consent_for_services": !override, "disclosure_other_orgs": !override,
		})
		svc, err := p.AddService(id, demoCaseWorker, map[string]any{
			"service_type": "shelter", "service_implementing_agency": t.d.profile.Referrals().ReceivingAgency,
			"service_response_type": "service_provision", "service_response_day_time": "2026-11-02T10:00:00.000Z",
		})
		if err != nil {
			return fmt.Errorf("demo: add service: %w", err)
		}
		if _, err := p.ReferService(id, svc, demoCaseWorker, demoUNHCRUser, override); err != nil {
			return fmt.Errorf("demo: refer service: %w", err)
		}
		org := mapping.OrgReferralID(p.Case(id)["case_id"].(string), svc)
		t.referrals[org] = id
		switch {
		case override:
			t.overridden[org] = true
		case i%8 == 0:
			if err := p.SetConsent(id, demoCaseWorker, false, false); err != nil {
				return err
			}
			t.withdrawn[org] = true
			t.consentLater[org] = i%16 == 0
		case i%8 == 2:
			t.withdrawAfter[org] = true
		}
	}
	fmt.Fprintf(t.out, "F2  referred %d services to UNHCR in Primero (%d with consent withdrawn, %d with a consent override instead of consent)\n",
		len(t.referrals), len(t.withdrawn), len(t.overridden))
	return nil
}

// changeConsent records consent again for some held referrals (the bridge
// releases them) and withdraws it for some that already reached UNHCR (the
// bridge exchanges nothing more about them).
func (t *traffic) changeConsent() error {
	given, withdrawn := 0, 0
	for org, later := range t.consentLater {
		if later {
			if err := t.d.primero.SetConsent(t.referrals[org], demoCaseWorker, true, true); err != nil {
				return err
			}
			given++
		}
	}
	for org := range t.withdrawAfter {
		if err := t.d.primero.SetConsent(t.referrals[org], demoCaseWorker, false, false); err != nil {
			return err
		}
		withdrawn++
	}
	fmt.Fprintf(t.out, "F2  consent given later for %d held referrals; withdrawn for %d referrals after they reached UNHCR\n", given, withdrawn)
	return nil
}

// consentSettled holds once every released referral has reached DTP and
// every withdrawal after sending is recorded on its exchange.
func (t *traffic) consentSettled(ctx context.Context) func(counts) bool {
	return func(counts) bool {
		for org, later := range t.consentLater {
			if later && t.d.dtp.ReferralCounts()[org] == 0 {
				return false
			}
		}
		for org := range t.withdrawAfter {
			ex, err := t.d.app.db.GetByKey(ctx, refbridge.FlowReferral, org)
			if err != nil || ex.Reason != engine.ReasonConsentWithdrawn {
				return false
			}
		}
		return true
	}
}

// decideServices has case workers accept or reject every third service that
// came from proGres.
func (t *traffic) decideServices(ctx context.Context) error {
	for i, number := range t.interventions {
		if i%3 != 0 || t.invalid[number] {
			continue
		}
		ex, err := t.d.app.db.GetByKey(ctx, refbridge.FlowIntervention, number)
		if err != nil || ex.State != refbridge.StateDone {
			continue
		}
		decision := []string{"accepted", "rejected"}[i%2]
		svc := mapping.ServiceUniqueID(t.d.profile.SiteID(), number)
		if err := t.d.primero.DecideService(ex.PeerRef, svc, demoCaseWorker, decision, "Synthetic reason"); err != nil {
			return fmt.Errorf("demo: decide service: %w", err)
		}
		t.decided[number] = decision
	}
	fmt.Fprintf(t.out, "F1d case workers decided %d services from proGres\n", len(t.decided))
	return nil
}

// answerReferrals has UNHCR decide every referral that reached DTP: most
// accepted, every fourth rejected with a reason.
func (t *traffic) answerReferrals(ctx context.Context) error {
	var batch []refbridge.ReferralDecision
	i := 0
	for org := range t.d.dtp.ReferralCounts() {
		if _, ours := t.referrals[org]; !ours {
			continue
		}
		i++
		d := refbridge.ReferralDecision{OrgReferralID: org, ReviewDecision: "125080000", ReviewDate: "2026-11-03T00:00:00Z"}
		if i%4 == 0 {
			d.ReviewDecision, d.RejectionReason, d.RejectionComment = "125080001", "125080001", "Synthetic comment"
		}
		batch = append(batch, d)
		t.answered[org] = d.ReviewDecision
	}
	if len(batch) > 0 {
		reply, err := t.d.dtp.PostDecisions(ctx, t.d.bridgeURL+server.RouteDecisions, t.d.token,
			refbridge.DecisionBatch{Interventions: batch, RequestType: refbridge.RequestTypeIncomingReferralDecision})
		if err != nil {
			return fmt.Errorf("demo: post decisions: %w", err)
		}
		if reply.Status != 200 {
			return fmt.Errorf("demo: bridge answered %d to a decision batch", reply.Status)
		}
	}
	fmt.Fprintf(t.out, "F2d UNHCR decided %d referrals\n", len(t.answered))
	return nil
}

// counts are the bridge's exchanges per flow and state, and how many
// referrals reached DTP and rest there: waiting for UNHCR's decision, or
// stopped because consent was withdrawn.
type counts struct {
	raw     map[refbridge.Flow]map[refbridge.ExchangeState]int
	waiting int
}

// resting counts the exchanges of f that wait for nobody but a person:
// done, failed, held, dead, or a referral waiting for UNHCR's decision.
func (c counts) resting(f refbridge.Flow) int {
	n := 0
	for _, s := range []refbridge.ExchangeState{refbridge.StateDone, refbridge.StateFailed, refbridge.StateHeld, refbridge.StateDead} {
		n += c.raw[f][s]
	}
	if f == refbridge.FlowReferral {
		n += c.waiting
	}
	return n
}

// settle prints a progress line per flow every second until done holds,
// and fails after two minutes without progress.
func (t *traffic) settle(ctx context.Context, phase string, done func(counts) bool) error {
	last, lastChange := "", time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		c, err := t.counts(ctx)
		if err != nil {
			return err
		}
		line := ""
		for _, f := range refbridge.Flows() {
			r := c.raw[f]
			moving := r[refbridge.StateReceived] + r[refbridge.StateMapped] + r[refbridge.StateDelivered] + r[refbridge.StateRejected]
			if f == refbridge.FlowReferral {
				moving -= c.waiting
			}
			line += fmt.Sprintf("%s %d done, %d moving, %d held, %d failed, %d dead | ", f, c.resting(f)-r[refbridge.StateHeld]-r[refbridge.StateFailed]-r[refbridge.StateDead],
				moving, r[refbridge.StateHeld], r[refbridge.StateFailed], r[refbridge.StateDead])
		}
		if line != last {
			fmt.Fprintln(t.out, "  "+line)
			last, lastChange = line, time.Now()
		}
		if done(c) {
			return nil
		}
		if time.Since(lastChange) > 2*time.Minute {
			return fmt.Errorf("demo: %s made no progress for two minutes", phase)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// counts reads the bridge's exchange counts.
func (t *traffic) counts(ctx context.Context) (counts, error) {
	raw, err := t.d.app.db.Counts(ctx, time.Time{})
	if err != nil {
		return counts{}, err
	}
	waiting := 0
	for _, reason := range []string{engine.ReasonAwaitingDecision, engine.ReasonConsentWithdrawn} {
		_, n, err := t.d.app.db.List(ctx, store.Filter{Flow: refbridge.FlowReferral, State: refbridge.StateDelivered, Reason: reason, Limit: 1})
		if err != nil {
			return counts{}, err
		}
		waiting += n
	}
	return counts{raw: raw, waiting: waiting}, nil
}

// summary compares what the demo sent with what the simulators hold: each
// intervention must be one service in Primero with one callback to DTP,
// each referral one message at DTP, each decision one effect at its peer.
// Held, rejected and dead come from the bridge, which must account for the
// rest; anything unaccounted for is lost, anything seen twice duplicated.
func (t *traffic) summary(ctx context.Context) demoSummary {
	s := demoSummary{Flows: map[refbridge.Flow]*flowSummary{}}
	c, _ := t.counts(ctx)
	for _, f := range refbridge.Flows() {
		s.Flows[f] = &flowSummary{Held: c.raw[f][refbridge.StateHeld], Rejected: c.raw[f][refbridge.StateFailed], Dead: c.raw[f][refbridge.StateDead]}
	}
	account := func(f refbridge.Flow, sent int, seen map[string]int) {
		fs := s.Flows[f]
		fs.Sent = sent
		for _, n := range seen {
			fs.Delivered++
			s.Duplicated += n - 1
		}
		if missing := sent - fs.Delivered - fs.Held - fs.Rejected - fs.Dead; missing > 0 {
			s.Lost += missing
		}
	}

	// F1: services in Primero by intervention number; callbacks at DTP.
	services := map[string]int{}
	for _, id := range t.d.primero.CaseIDs() {
		svcs, _ := t.d.primero.Case(id)["services_section"].([]any)
		for _, sv := range svcs {
			if m, ok := sv.(map[string]any); ok {
				if num, _ := m["progres_interventionnumber"].(string); num != "" {
					services[num]++
				}
			}
		}
	}
	callbacks := map[string]int{}
	statusCounts := t.d.dtp.StatusCounts()
	for k, n := range statusCounts {
		if k.Status == refbridge.StatusPendingAcknowledgement || k.Status == refbridge.StatusDeliveryFail {
			callbacks[k.InterventionNumber] += n
		}
	}
	seen := map[string]int{}
	for _, num := range t.interventions {
		if services[num] > 0 {
			seen[num] = services[num]
		}
		if callbacks[num] > 1 {
			s.Duplicated += callbacks[num] - 1
		}
		if callbacks[num] == 0 && (services[num] > 0 || t.invalid[num]) {
			s.Lost++ // the sender was never told
		}
	}
	account(refbridge.FlowIntervention, len(t.interventions), seen)

	// F1d: decisions at DTP.
	seen = map[string]int{}
	for num := range t.decided {
		for k, n := range statusCounts {
			if k.InterventionNumber == num && (k.Status == refbridge.StatusAcknowledged || k.Status == refbridge.StatusRejected) {
				seen[num] += n
			}
		}
	}
	account(refbridge.FlowServiceDecision, len(t.decided), seen)

	// F2: referrals at DTP.
	seen = map[string]int{}
	for org, n := range t.d.dtp.ReferralCounts() {
		if _, ours := t.referrals[org]; ours {
			seen[org] = n
		}
	}
	account(refbridge.FlowReferral, len(t.referrals), seen)

	// F2d: the Primero referral carries UNHCR's decision.
	seen = map[string]int{}
	for org := range t.answered {
		for _, r := range t.d.primero.Referrals(t.referrals[org]) {
			if r.Status == refbridge.ReferralAccepted || r.Status == refbridge.ReferralRejected {
				seen[org] = 1
			}
		}
	}
	account(refbridge.FlowReferralDecision, len(t.answered), seen)
	return s
}
