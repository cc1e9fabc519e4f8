package engine

import (
	"time"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

// InterventionInbound is the durable form of one proGres intervention: its
// payload is every FetchXML row DTP sent for it (one per language and
// specific-need join), so nothing the rows carry is lost before mapping.
func InterventionInbound(number string, rows []refbridge.Intervention) refbridge.Inbound {
	payload := encode(rows)
	return refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: number, Payload: payload,
		ContentHash: hash(payload), State: refbridge.StateReceived}
}

// DecisionInbound is the durable form of one UNHCR referral decision,
// keyed by the org-referral id refbridge sent.
func DecisionInbound(d refbridge.ReferralDecision) refbridge.Inbound {
	payload := encode(d)
	return refbridge.Inbound{Flow: refbridge.FlowReferralDecision, Key: d.OrgReferralID, Payload: payload,
		ContentHash: hash(payload), State: refbridge.StateReceived}
}

// Validator checks DTP items at the edge with the very mappings the engine
// will run, so DTP hears every problem in the HTTP answer and the refused
// item is still stored for its failure callback. It implements
// server.Validator.
type Validator struct {
	Profile *profile.Profile
	// Now gives the date ages are computed on; default time.Now.
	Now func() time.Time
}

// Interventions folds the rows of a batch that differ only by a language
// or specific-need join and maps each intervention to find its problems.
func (v Validator) Interventions(rows []refbridge.Intervention) ([]refbridge.Intervention, [][]refbridge.Problem) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	folded := mapping.FoldInterventions(rows)
	out := make([]refbridge.Intervention, len(folded))
	problems := make([][]refbridge.Problem, len(folded))
	for i, f := range folded {
		_, problems[i] = mapping.InterventionToCase(v.Profile, f, now())
		out[i] = f.Intervention
	}
	return out, problems
}

// Decision maps one UNHCR decision to find its problems.
func (v Validator) Decision(d refbridge.ReferralDecision) []refbridge.Problem {
	_, problems := mapping.DTPDecisionToReferral(v.Profile, d)
	return problems
}
