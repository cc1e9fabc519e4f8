package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/mapping"
)

// Synthetic personal data: no real person. The no-personal-data-at-rest
// check scans the store's files for these.
const (
	givenPrefix    = "Achanchild" // F1 given names: Achanchild<i>
	familyName     = "Okwerasyn"  // F1 family name
	caseGiven      = "Nyaboth"    // F2 given names: Nyaboth<j>
	caseFamily     = "Gatwechsyn" // F2 family name
	addressText    = "Crashcamp block"
	phonePrefix    = "+000555"
	reasonText     = "Synthetic crash reason"
	decisionAccept = "125080000"
	decisionReject = "125080001"
	decisionBad    = "999999999" // not in the profile's decision table
)

// interventionPlan is one proGres intervention the suite sends (F1) and
// maybe the case worker's decision on its service (F1d).
type interventionPlan struct {
	i          int
	number     string
	individual string
	valid      bool
	decision   string // "", "accepted" or "rejected"
	dob        string // YYYY-MM-DD
}

// referralPlan is one referral a case worker makes to UNHCR in Primero (F2)
// and maybe UNHCR's decision on it (F2d).
type referralPlan struct {
	j        int
	caseID   string // Primero record id
	service  string // service unique_id
	org      string // DTP org-referral id
	decision string // "", decisionAccept, decisionReject or decisionBad
	dob      string
}

func (r *referralPlan) validDecision() bool {
	return r.decision == decisionAccept || r.decision == decisionReject
}

// traffic is the load of one run across the four flows and what it sent,
// to compare with the simulators' state and the store at the end.
type traffic struct {
	w    *world
	send *sender
	site string
	pace time.Duration // how long sending interventions and referrals takes
	// noUNHCRDecisions plans no F2d: UNHCR cannot decide on referrals
	// that never reach it.
	noUNHCRDecisions bool
	ivs              []*interventionPlan
	nRefs            int
	mu               sync.Mutex
	rng              *rand.Rand
	refs             []*referralPlan
	byOrg            map[string]*referralPlan
	f1d              int // service decisions made in Primero
	f2d              int // decisions posted to the bridge
	inbox            []string
	failed           []error
}

// newTraffic plans n referrals across the flows: n/2 interventions (a tenth
// invalid, some for the same child, some re-posted), n/4 referrals to UNHCR,
// a case worker's decision on about a quarter of the valid interventions
// and UNHCR's decision on half the referrals (a fifth of those invalid).
func newTraffic(w *world, n int, seed uint64, pace time.Duration) *traffic {
	tr := &traffic{w: w, send: &sender{w: w}, site: w.profile.SiteID(), pace: pace,
		rng: rand.New(rand.NewPCG(seed, 0x7261_6666_6963)), byOrg: map[string]*referralPlan{}}
	nIvs := max(1, n/2)
	tr.nRefs = max(1, n/4)
	for i := 1; i <= nIvs; i++ {
		p := &interventionPlan{
			i: i, number: fmt.Sprintf("CRS-26-PRTITV-%07d", i), individual: fmt.Sprintf("CRS-%08d", i),
			valid: i%10 != 0, dob: fmt.Sprintf("2013-%02d-%02d", 1+i%12, 1+i%28),
		}
		if i%13 == 0 && i > 1 {
			p.individual = tr.ivs[len(tr.ivs)-1].individual // a second intervention for one child
		}
		if p.valid && i%4 == 1 {
			p.decision = []string{"accepted", "rejected"}[(i/4)%2]
		}
		tr.ivs = append(tr.ivs, p)
	}
	return tr
}

// intervention is the DTP row for plan p: no real person.
func (tr *traffic) intervention(p *interventionPlan) refbridge.Intervention {
	var inbound []string
	for _, s := range tr.w.profile.Services() {
		if s.Progres != "" {
			inbound = append(inbound, s.Progres)
		}
	}
	iv := refbridge.Intervention{
		InterventionNumber: p.number, InterventionStartDate: "2026-11-01T00:00:00Z",
		InterventionType: inbound[p.i%len(inbound)], InterventionDesc: "<p>Synthetic crash-suite referral</p>",
		ReasonForReferral: `[{"CreatedBy":"Crash Officer","Text":"` + reasonText + `","CreatedOn":"2026-11-01T08:00:00Z"}]`,
		UserTitle:         "Crash Protection Officer", UserEmail: "crash.officer@example.org",
		IndividualID: p.individual,
		RegistrationGroup: &refbridge.Lookup{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", p.i), LogicalName: "progres_registrationgroup",
			Name: "CRS-26-" + p.individual, KeyAttributes: []json.RawMessage{}},
		GivenName: fmt.Sprintf("%s%d", givenPrefix, p.i), FamilyName: familyName, DateOfBirth: p.dob + "T00:00:00Z",
		Sex: []string{"125080000", "125080001"}[p.i%2],
	}
	if !p.valid {
		iv.FamilyName = "" // DTP must hear which field is missing
	}
	return iv
}

func (tr *traffic) fail(err error) {
	tr.mu.Lock()
	tr.failed = append(tr.failed, err)
	tr.mu.Unlock()
}

func (tr *traffic) errors() []error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.failed)
}

func (tr *traffic) intn(n int) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.rng.IntN(n)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// run sends everything, each flow in its own goroutine, and returns when
// everything has been sent and decided (or ctx ends).
func (tr *traffic) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, fn := range []func(context.Context) error{tr.sendInterventions, tr.makeReferrals, tr.decideServices, tr.answerReferrals} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				tr.fail(err)
			}
		}()
	}
	wg.Wait()
}

// sendInterventions posts the interventions in batches of 1-40 over the
// pace, exact repeats inside some batches, and re-posts some in a later
// batch (DTP re-delivers; the bridge must answer duplicate).
func (tr *traffic) sendInterventions(ctx context.Context) error {
	var batch, again []refbridge.Intervention
	batches := max(1, len(tr.ivs)/20)
	gap := tr.pace / time.Duration(batches)
	size := 1 + tr.intn(40)
	for k, p := range tr.ivs {
		iv := tr.intervention(p)
		batch = append(batch, iv)
		if p.i%7 == 0 {
			batch = append(batch, iv) // repeated in the same batch: folded
		}
		if p.i%5 == 0 {
			again = append(again, iv) // re-posted with the next batch
		}
		if len(batch) < size && k < len(tr.ivs)-1 {
			continue
		}
		ans, err := tr.send.interventions(ctx, batch)
		if err != nil {
			return fmt.Errorf("F1 post: %w", err)
		}
		for _, r := range ans.Results {
			if r.Outcome == refbridge.IntakeUpdated {
				return fmt.Errorf("F1 post: %s answered updated for unchanged content", r.Key)
			}
		}
		batch, again = again, nil
		size = 1 + tr.intn(40)
		sleep(ctx, gap/2+time.Duration(tr.intn(int(gap)+1)))
	}
	if len(batch) > 0 {
		if _, err := tr.send.interventions(ctx, batch); err != nil {
			return fmt.Errorf("F1 post: %w", err)
		}
	}
	return nil
}

// makeReferrals plays Primero case workers referring services to UNHCR,
// one case per child, every sixth child with a second service referred.
func (tr *traffic) makeReferrals(ctx context.Context) error {
	p := tr.w.primero
	gap := tr.pace / time.Duration(tr.nRefs)
	var caseID string
	for j := 1; j <= tr.nRefs && ctx.Err() == nil; j++ {
		r := &referralPlan{j: j, dob: fmt.Sprintf("2012-%02d-%02d", 1+j%12, 1+j%28)}
		if j%6 == 0 && caseID != "" {
			r.caseID = caseID // a second service of the previous child
			r.dob = tr.refs[len(tr.refs)-1].dob
		} else {
			r.caseID = p.SeedCase(map[string]any{
				"owned_by": caseWorker, "owned_by_agency_id": "UNICEF", "module_id": "primeromodule-cp", "status": "open",
				"name_first": fmt.Sprintf("%s%d", caseGiven, j), "name_last": caseFamily, "date_of_birth": r.dob, "sex": "female",
				"unhcr_individual_no": fmt.Sprintf("CRS-R-%07d", j), "unhcr_id_no": "CRS-26-R", "language": []any{"language2"},
				"address_current": fmt.Sprintf("%s %d", addressText, j), "telephone_current": fmt.Sprintf("%s%06d", phonePrefix, j),
				"consent_for_services": true, "disclosure_other_orgs": true,
			})
			caseID = r.caseID
		}
		svc, err := p.AddService(r.caseID, caseWorker, map[string]any{
			"service_type": "shelter", "service_implementing_agency": tr.w.profile.Referrals().ReceivingAgency,
			"service_response_type": "service_provision", "service_response_day_time": "2026-11-02T10:00:00.000Z",
			"service_referral_notes": "Synthetic referral notes",
		})
		if err != nil {
			return fmt.Errorf("F2 add service: %w", err)
		}
		if _, err := p.ReferService(r.caseID, svc, caseWorker, unhcrUser, false); err != nil {
			return fmt.Errorf("F2 refer service: %w", err)
		}
		r.service = svc
		r.org = mapping.OrgReferralID(p.Case(r.caseID)["case_id"].(string), svc)
		if j%2 == 0 && !tr.noUNHCRDecisions {
			switch {
			case j%10 == 0:
				r.decision = decisionBad
			case j%6 == 2:
				r.decision = decisionReject
			default:
				r.decision = decisionAccept
			}
		}
		tr.mu.Lock()
		tr.refs = append(tr.refs, r)
		tr.byOrg[r.org] = r
		tr.mu.Unlock()
		sleep(ctx, gap/2+time.Duration(tr.intn(int(gap)+1)))
	}
	return ctx.Err()
}

func (tr *traffic) referrals() []*referralPlan {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.refs)
}

// decideServices plays the case worker who accepts or rejects a service
// that came from proGres, once its service is in Primero (flow F1d).
func (tr *traffic) decideServices(ctx context.Context) error {
	var pending []*interventionPlan
	for _, p := range tr.ivs {
		if p.decision != "" {
			pending = append(pending, p)
		}
	}
	for len(pending) > 0 {
		var left []*interventionPlan
		for _, p := range pending {
			id := mapping.CaseRecordID(tr.site, p.individual)
			svc := mapping.ServiceUniqueID(tr.site, p.number)
			if !hasService(tr.w.primero.Case(id), svc) {
				left = append(left, p)
				continue
			}
			if err := tr.w.primero.DecideService(id, svc, caseWorker, p.decision, "Synthetic decision reason"); err != nil {
				return fmt.Errorf("F1d decide: %w", err)
			}
			tr.mu.Lock()
			tr.f1d++
			tr.mu.Unlock()
		}
		pending = left
		if ctx.Err() != nil {
			return fmt.Errorf("F1d: %d services never appeared in Primero: %w", len(pending), ctx.Err())
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return nil
}

// answerReferrals plays UNHCR deciding on referrals that reached DTP
// (flow F2d), in batches as they arrive.
func (tr *traffic) answerReferrals(ctx context.Context) error {
	answered := map[string]bool{}
	want := 0
	for {
		refs := tr.referrals()
		sent := len(refs) == tr.nRefs
		want = 0
		var batch []refbridge.ReferralDecision
		counts := tr.w.dtp.ReferralCounts()
		for _, r := range refs {
			if r.decision == "" {
				continue
			}
			want++
			if answered[r.org] || counts[r.org] == 0 {
				continue
			}
			d := refbridge.ReferralDecision{OrgReferralID: r.org, ReviewDecision: r.decision, ReviewDate: "2026-11-03T00:00:00Z"}
			if r.decision == decisionReject {
				d.RejectionReason, d.RejectionComment = "125080001", "Synthetic comment"
			}
			batch = append(batch, d)
		}
		if len(batch) > 0 {
			ans, err := tr.send.decisions(ctx, batch)
			if err != nil {
				return fmt.Errorf("F2d post: %w", err)
			}
			for _, res := range ans.Results {
				want := refbridge.IntakeAccepted
				if tr.byOrgGet(res.Key).decision == decisionBad {
					want = refbridge.IntakeRejected
				}
				if res.Outcome != want && res.Outcome != refbridge.IntakeDuplicate {
					return fmt.Errorf("F2d post: %s answered %s, want %s (or duplicate on re-delivery)", res.Key, res.Outcome, want)
				}
			}
			for _, d := range batch {
				answered[d.OrgReferralID] = true
			}
			tr.mu.Lock()
			tr.f2d = len(answered)
			tr.mu.Unlock()
		}
		if sent && len(answered) == want {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("F2d: %d of %d referrals never reached DTP: %w", want-len(answered), want, ctx.Err())
		}
		sleep(ctx, 150*time.Millisecond)
	}
}

func (tr *traffic) byOrgGet(org string) *referralPlan {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if r := tr.byOrg[org]; r != nil {
		return r
	}
	return &referralPlan{}
}

// hasService reports whether a Primero case (Sim.Case) has the service.
func hasService(c map[string]any, uniqueID string) bool {
	svcs, _ := c["services_section"].([]any)
	for _, s := range svcs {
		if m, ok := s.(map[string]any); ok && m["unique_id"] == uniqueID {
			return true
		}
	}
	return false
}

// observed is what the simulators hold, per natural key.
type observed struct {
	services     map[string]int // Primero services per progres_interventionnumber
	casesPerIndv map[string]int // Primero cases per unhcr_individual_no
	statuses     map[dtptest.StatusKey]int
	referrals    map[string]int    // DTP referrals per org-referral id
	decided      map[string]string // Primero referral status per org-referral id (ours)
	referralsPer map[string]int    // Primero referrals per service unique_id (ours)
	synced       map[string]bool   // a sync write-back names the org-referral id
}

func (tr *traffic) observe() observed {
	o := observed{services: map[string]int{}, casesPerIndv: map[string]int{}, decided: map[string]string{},
		referralsPer: map[string]int{}, synced: map[string]bool{}}
	p := tr.w.primero
	for _, id := range p.CaseIDs() {
		c := p.Case(id)
		if ind, _ := c["unhcr_individual_no"].(string); ind != "" {
			o.casesPerIndv[ind]++
		}
		svcs, _ := c["services_section"].([]any)
		for _, s := range svcs {
			if m, ok := s.(map[string]any); ok {
				if num, _ := m["progres_interventionnumber"].(string); num != "" {
					o.services[num]++
				}
			}
		}
	}
	refs := tr.referrals()
	seenCase := map[string]bool{}
	for _, r := range refs {
		for _, pr := range p.Referrals(r.caseID) {
			if pr.ServiceRecordID == r.service {
				o.referralsPer[r.service]++
				if pr.Status == refbridge.ReferralAccepted || pr.Status == refbridge.ReferralRejected {
					o.decided[r.org] = pr.Status
				}
			}
		}
		if !seenCase[r.caseID] {
			seenCase[r.caseID] = true
			for _, e := range p.SyncLog(r.caseID) {
				for _, rr := range refs {
					if rr.caseID == r.caseID && e.Synced && strings.Contains(e.Status, rr.org) {
						o.synced[rr.org] = true
					}
				}
			}
		}
	}
	o.statuses = tr.w.dtp.StatusCounts()
	o.referrals = tr.w.dtp.ReferralCounts()
	return o
}

// complete reports whether every effect the traffic owes is visible in the
// simulators, and otherwise what is missing first.
func (tr *traffic) complete(o observed) (bool, string) {
	var missing []string
	note := func(format string, args ...any) {
		if len(missing) < 5 {
			missing = append(missing, fmt.Sprintf(format, args...))
		}
	}
	for _, p := range tr.ivs {
		pending := refbridge.StatusPendingAcknowledgement
		if !p.valid {
			pending = refbridge.StatusDeliveryFail
		} else if o.services[p.number] == 0 {
			note("F1 %s: no service in Primero", p.number)
		}
		if o.statuses[dtptest.StatusKey{InterventionNumber: p.number, Status: pending}] == 0 {
			note("F1 %s: no %q callback at DTP", p.number, pending)
		}
		if p.decision != "" && o.statuses[dtptest.StatusKey{InterventionNumber: p.number, Status: f1dStatus(p.decision)}] == 0 {
			note("F1d %s: no %q at DTP", p.number, f1dStatus(p.decision))
		}
	}
	refs := tr.referrals()
	if len(refs) != tr.nRefs {
		note("F2: %d of %d referrals made", len(refs), tr.nRefs)
	}
	for _, r := range refs {
		if o.referrals[r.org] == 0 {
			note("F2 %s: not at DTP", r.org)
		}
		if r.validDecision() {
			if o.decided[r.org] == "" {
				note("F2d %s: Primero referral not decided", r.org)
			}
		} else if !o.synced[r.org] {
			note("F2 %s: no sync write-back in Primero", r.org)
		}
	}
	return len(missing) == 0, strings.Join(missing, "; ")
}

// f1dStatus is the DTP status a case worker's decision becomes.
func f1dStatus(decision string) string {
	if decision == "accepted" {
		return refbridge.StatusAcknowledged
	}
	return refbridge.StatusRejected
}
