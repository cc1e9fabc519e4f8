package mapping_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

// goldenCase is one input through one flow. Its input and output are both
// kept under testdata/golden/<flow>/<name>.{in,out}.json, so a focal point can
// replay any of them with `refbridge map <flow> --profile gambella < x.in.json`.
type goldenCase struct {
	flow, name string
	profile    *profile.Profile
	input      []byte
}

// goldenCases puts every fixture through every flow that reads it, plus
// inputs that show the corrected defects of the reference.
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	g := gambella(t)
	var out []goldenCase
	add := func(flow, name string, p *profile.Profile, input []byte) {
		out = append(out, goldenCase{flow, name, p, input})
	}

	// F1: every intervention of the inbound batch, then synthetic ones.
	batch := decodeJSON[rawBatch](t, fixture(t, "dtp-interventions-inbound.json"))
	for i, raw := range batch.Interventions {
		add(mapping.FlowInterventionToCase, fmt.Sprintf("intervention-%d", i+1), g, raw)
	}
	edit := func(base json.RawMessage, set map[string]any) []byte {
		m := decodeJSON[map[string]any](t, base)
		for k, v := range set {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return marshal(t, m)
	}
	add(mapping.FlowInterventionToCase, "every-problem", g, edit(batch.Interventions[0], map[string]any{
		"progres_interventionnumber":           nil,
		"interventiontype.progres_description": "BID / BIA conducted",
		"individuals.progres_dateofbirth":      "2030-01-01T00:00:00Z",
		"individuals.progres_sex":              "125080009",
		"progres_interventionstartdate":        "06/05/2024",
		"progres_reasonforreferral":            "Reason typed as plain text",
		"progres_primeroid":                    "12345",
	}))
	add(mapping.FlowInterventionToCase, "leap-day-scripts-html", g, edit(batch.Interventions[0], map[string]any{
		"individuals.progres_dateofbirth":  "2016-02-29T00:00:00",
		"individuals.progres_givenname":    "ሰላም",
		"individuals.progres_familyname":   "عبد الله",
		"individuals.progres_middlename":   "Łucja Núñez",
		"individuals.progres_sex":          "Male",
		"progres_interventiondescription":  `<p>Needs <b>urgent</b> care &amp; follow-up</p><script>alert("x")</script><p>Second&nbsp;line &lt;not a tag&gt;</p>`,
		"progres_reasonforreferral":        `[{"CreatedBy":"Test Officer","Text":"<p>Reason one</p>","CreatedOn":"2024-05-06T08:00:00Z"},{"CreatedBy":"Other Officer","Text":"Reason two","CreatedOn":"2024-05-07T08:00:00Z"}]`,
		"languages.progres_languagecodeid": map[string]any{"Id": "00000000-0000-4000-8000-000000002009", "Name": "Swahili", "KeyAttributes": []any{}, "LogicalName": "progres_languagecode", "RowVersion": nil},
	}))

	// F2 and F1d: every service of the fixture case.
	c := fixtureCase(t)
	users := fixtureUsers(t)
	for _, s := range c.Services {
		name := "service-" + s.UniqueID[:8]
		add(mapping.FlowCaseToDTPReferral, name, g, marshal(t, mapping.ReferralInput{
			Case: c, ServiceUniqueID: s.UniqueID, Referral: fixtureReferral(t, s.UniqueID), Users: users}))
		add(mapping.FlowServiceDecisionToDTP, name, g, marshal(t, mapping.ServiceDecisionInput{Case: c, ServiceUniqueID: s.UniqueID}))
	}
	// The case owner has no phone, so the whole fallback record is the
	// contact; with the fixtures' admin as fallback the referral goes out.
	referral := mapping.ReferralInput{Case: c, ServiceUniqueID: unhcrService, Referral: fixtureReferral(t, unhcrService), Users: users}
	add(mapping.FlowCaseToDTPReferral, "service-f0f0f0f0-fallback-admin", withAdminFallback(t), marshal(t, referral))
	noConsent := referral
	noConsent.Case.DisclosureOtherOrgs = new(false)
	noConsent.Case.ConsentForServices = nil
	noConsent.Referral.ConsentOverridden = new(true)
	add(mapping.FlowCaseToDTPReferral, "service-f0f0f0f0-no-consent", withAdminFallback(t), marshal(t, noConsent))

	// F2d: every decision of the inbound batch, then the other spelling and
	// an unknown code.
	decisions := decodeJSON[rawBatch](t, fixture(t, "dtp-decision-inbound.json"))
	for i, raw := range decisions.Interventions {
		add(mapping.FlowDTPDecisionToReferral, fmt.Sprintf("decision-%d", i+1), g, raw)
	}
	add(mapping.FlowDTPDecisionToReferral, "decision-comment-spelt-right", g, edit(decisions.Interventions[1], map[string]any{
		"progres_interoperabilityreferralrejectionomment":  nil,
		"progres_interoperabilityreferralrejectioncomment": "Synthetic comment under the correct spelling",
	}))
	add(mapping.FlowDTPDecisionToReferral, "decision-unknown-codes", g, edit(decisions.Interventions[1], map[string]any{
		"progres_reviewdecision":                         "125080003",
		"progres_interoperabiltyreferralrejectionreason": "125080007",
		"progres_orgreferralid":                          "not-a-referral-id",
	}))
	return out
}

// TestGolden runs each golden case through mapping.Run, which is exactly
// what `refbridge map` prints.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, gc := range goldenCases(t) {
		t.Run(gc.flow+"/"+gc.name, func(t *testing.T) {
			t.Parallel()
			out, ps, err := mapping.Run(gc.profile, gc.flow, gc.input, processingTime())
			if err != nil {
				t.Fatal(err)
			}
			if ps != nil {
				out = mapping.EncodeProblems(ps)
			}
			dir := filepath.Join("testdata", "golden", gc.flow)
			checkGolden(t, filepath.Join(dir, gc.name+".in.json"), indentJSON(t, gc.input))
			checkGolden(t, filepath.Join(dir, gc.name+".out.json"), out)
		})
	}
}

// TestGoldenCallbacks folds the inbound batch and builds the callback DTP
// gets for each intervention: Pending Acknowledgement when it maps,
// Delivery Fail naming every problem when it does not.
func TestGoldenCallbacks(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	folded := mapping.FoldInterventions(interventions(t))
	type summary struct {
		InterventionNumber string              `json:"progres_interventionnumber"`
		Rows               []int               `json:"rows"`
		Languages          []string            `json:"languages"`
		SpecificNeeds      []string            `json:"specific_needs"`
		Callback           any                 `json:"callback"`
		Problems           []refbridge.Problem `json:"problems"`
	}
	var got []summary
	for _, f := range folded {
		s := summary{InterventionNumber: f.Intervention.InterventionNumber, Rows: f.Rows, Languages: f.Languages, SpecificNeeds: f.SpecificNeeds}
		u, ps := mapping.InterventionToCase(p, f, processingTime())
		if ps != nil {
			s.Problems = ps
			s.Callback = mapping.FailureCallback(p, f.Intervention.InterventionNumber, ps)
		} else {
			// The case id and owner come from Primero's answer; these stand in.
			s.Callback = mapping.SuccessCallback(p, u.InterventionNumber, "c0c0c0c0-0000-4000-8000-00000000000"+f.Intervention.InterventionNumber[len(f.Intervention.InterventionNumber)-1:], u.Case.OwnedBy)
		}
		got = append(got, s)
	}
	out, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "golden", "callbacks", "dtp-interventions-inbound.out.json"), append(out, '\n'))
}
