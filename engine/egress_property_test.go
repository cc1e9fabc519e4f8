package engine_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/primero/primerotest"
	"refbridge/profile"
)

var egressRounds = flag.Int("egress.rounds", 6, "random profiles the egress property test tries")

// TestEgressProperty: for random ISP allow-lists, consent rules and cases,
// nothing reaching the simulated peers carries a field outside the
// allow-list for its message kind and agency, and no referral reaches DTP
// without the consent the profile requires. Both are checked on the bodies
// the simulators received, not on what refbridge meant to send.
func TestEgressProperty(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	for round := range *egressRounds {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(round)))
		p, allowsOverride := randomProfile(t, rng)
		t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) {
			t.Parallel()
			checkEgress(t, rng, p, allowsOverride)
		})
	}
}

// randomProfile drops random fields from the Gambella allow-lists and
// randomly accepts consent overrides. Fields the profile check says a peer
// cannot do without are learnt from its findings and kept.
func randomProfile(t *testing.T, rng *rand.Rand) (*profile.Profile, bool) {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	for range 50 {
		var out []string
		inISP := false
		for _, line := range strings.Split(string(src), "\n") {
			switch {
			case strings.HasPrefix(line, "isp:"):
				inISP = true
			case line != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "#"):
				inISP = false
			}
			name, isItem := strings.CutPrefix(line, "      - ")
			if inISP && isItem && !required[name] && rng.IntN(3) == 0 {
				continue
			}
			out = append(out, line)
		}
		edited := strings.Join(out, "\n")
		override := rng.IntN(2) == 0
		if override {
			const anchor = "    review: true  # the case also has unhcr_export_opt_in"
			edited = strings.Replace(edited, anchor, "    override: [{field: referral.consent_overridden, equals: true}]\n"+anchor, 1)
		}
		p, findings := profile.Check([]byte(edited))
		if p != nil {
			return p, override
		}
		for _, f := range findings {
			if _, rest, ok := strings.Cut(f.String(), `"`); ok {
				if name, tail, ok := strings.Cut(rest, `"`); ok && strings.HasPrefix(tail, " must be allowed") {
					required[name] = true
				}
			}
		}
	}
	t.Fatal("no valid random profile in 50 tries")
	return nil, false
}

type seededReferral struct {
	orgID             string
	consent, override bool
}

func checkEgress(t *testing.T, rng *rand.Rand, p *profile.Profile, allowsOverride bool) {
	h := newHarness(t, withProfile(p))

	// F2: cases with every combination of consent and override, random
	// optional fields, and fields no allow-list names.
	var refs []seededReferral
	for i := range 8 {
		consent, override := rng.IntN(2) == 0, rng.IntN(2) == 0
		if !consent && !override {
			override = true // Primero refuses a referral with neither
		}
		id, _, orgID := h.seedCase(fmt.Sprintf("TST-%08d", 100+i), consent, override)
		extra := map[string]any{"protection_concerns": []any{"unaccompanied"}, "notes_section": []any{map[string]any{"note_text": "Synthetic note"}}}
		if rng.IntN(2) == 0 {
			extra["name_middle"] = "Sample"
		}
		if rng.IntN(2) == 0 {
			extra["name_nickname"] = "Fixie"
		}
		if err := h.primero.PatchCase(id, caseWorker, extra); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, seededReferral{orgID: orgID, consent: consent, override: override})
	}
	// F1: interventions with random optional fields blanked.
	base := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	var ivs []refbridge.Intervention
	for i := range 4 {
		iv := base
		iv.InterventionNumber = fmt.Sprintf("TST-24-PRTITV-%07d", 900+i)
		iv.IndividualID = fmt.Sprintf("TST-%08d", 900+i)
		if rng.IntN(2) == 0 {
			iv.MiddleName, iv.CommonlyUsedName = "", ""
		}
		if rng.IntN(2) == 0 {
			iv.PrimaryPhone, iv.Language = "", nil
		}
		ivs = append(ivs, iv)
	}
	h.receiveInterventions(ivs...)
	h.poll()

	resting := []refbridge.ExchangeState{refbridge.StateDelivered, refbridge.StateDone, refbridge.StateHeld, refbridge.StateFailed, refbridge.StateDead}
	for _, r := range refs {
		h.waitFor(refbridge.FlowReferral, r.orgID, resting...)
	}
	for _, iv := range ivs {
		h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, resting...)
	}

	// What DTP received.
	counts := h.dtp.ReferralCounts()
	for _, msg := range h.dtp.Received() {
		switch {
		case msg.Referral != nil:
			checkKeys(t, "DTP referral", msg.Body, p.AllowedFields(profile.KindDTPReferral, "UNICEF"), nil)
		case msg.Status != nil:
			checkKeys(t, "DTP status", msg.Body, p.AllowedFields(profile.KindDTPStatus, ""), nil)
		}
	}
	for _, r := range refs {
		// Every permitted referral goes exactly once (so the checks above
		// saw real traffic); no other ever does.
		want := 0
		if r.consent || (r.override && allowsOverride) {
			want = 1
		}
		if n := counts[r.orgID]; n != want {
			ex := h.waitFor(refbridge.FlowReferral, r.orgID, resting...)
			t.Errorf("referral %s (consent %v, override %v, overrides allowed %v) reached DTP %d times, want %d; it is %s: %s %v",
				r.orgID, r.consent, r.override, allowsOverride, n, want, ex.State, ex.Reason, ex.Problems)
		}
	}

	// What Primero received: case bodies within the case allow-list of the
	// service's implementing agency, plus refbridge's own sync fields.
	serviceType, _ := p.ServiceFromProgres(base.InterventionType)
	caseAllowed := p.AllowedFields(profile.KindCase, p.ServiceImplementingAgency(serviceType))
	// refbridge's own bookkeeping, never the child's data: the sync status,
	// and the case id refbridge chooses so a re-sent create cannot double.
	bookkeeping := []string{"mark_synced", "mark_synced_url", "mark_synced_status", "id"}
	cases := 0
	for _, w := range h.primero.Writes() {
		if w.Pattern == primerotest.PatternCreateCase {
			cases++
		}
		switch w.Pattern {
		case primerotest.PatternCreateCase, primerotest.PatternPatchCase:
			checkKeys(t, w.Pattern, data(t, w.Body), caseAllowed, bookkeeping)
		case primerotest.PatternPatchReferral:
			checkKeys(t, w.Pattern, data(t, w.Body), p.AllowedFields(profile.KindReferralDecision, ""), nil)
		}
	}
	if cases != len(ivs) {
		t.Errorf("%d cases created in Primero for %d interventions of new children", cases, len(ivs))
	}
}

// data unwraps Primero's {"data": {...}} request envelope.
func data(t *testing.T, body []byte) []byte {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Data == nil {
		t.Fatalf("Primero write without a data object: %v", err)
	}
	return env.Data
}

// checkKeys fails for each key of the JSON object body (and of each item
// of its services_section, as "services_section.<key>") that carries a
// value (null carries none) and is neither allowed nor one of bookkeeping.
func checkKeys(t *testing.T, what string, body []byte, allowed, bookkeeping []string) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v", what, err)
	}
	ok := func(name string) bool { return slices.Contains(allowed, name) || slices.Contains(bookkeeping, name) }
	for k, v := range obj {
		if string(v) == "null" {
			continue // the wire format names the field; no data crosses
		}
		if k == "services_section" {
			var items []map[string]json.RawMessage
			if err := json.Unmarshal(v, &items); err != nil {
				t.Fatalf("%s: services_section: %v", what, err)
			}
			for _, it := range items {
				for sk, sv := range it {
					if string(sv) != "null" && !ok("services_section."+sk) {
						t.Errorf("%s carries services_section.%s, which the allow-list %v does not name", what, sk, allowed)
					}
				}
			}
			continue
		}
		if !ok(k) {
			t.Errorf("%s carries %s, which the allow-list %v does not name", what, k, allowed)
		}
	}
}
