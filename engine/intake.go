package engine

import (
	"time"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

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
