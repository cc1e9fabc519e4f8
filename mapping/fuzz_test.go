package mapping_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

// The fuzz targets vary the fields each mapping reads, on top of a fixture,
// against both the Gambella profile and a narrower ISP. They check that the
// mappings never panic, that anything they return carries values only in
// allow-listed fields, and the invariants each flow promises.

func FuzzInterventionToCase(f *testing.F) {
	for _, iv := range interventions(f) {
		f.Add(iv.InterventionNumber, iv.InterventionType, iv.DateOfBirth, iv.Sex, refbridge.LookupName(iv.Language), iv.InterventionDesc, iv.ReasonForReferral, iv.GivenName)
	}
	f.Add("N-1", "BID", "2016-02-29T00:00:00", "Female", "Dinka, Southeastern", `<p>a<script>x</script>&amp;</p>`, `[{"Text":"<b>t</b>"}]`, "ሰላም")
	f.Add("", "", "", "", "", "", "", "")
	f.Add(" N-2 ", "Legal Assistance", "2024-05-10", "125080003", "Swahili", "a < b", `[]`, "عبد الله")
	p, narrowP := gambella(f), narrow(f)
	base := interventions(f)[0]
	f.Fuzz(func(t *testing.T, number, itype, dob, sex, language, desc, reason, given string) {
		iv := base
		iv.InterventionNumber, iv.InterventionType, iv.DateOfBirth, iv.Sex = number, itype, dob, sex
		iv.Language = &refbridge.Lookup{Name: language}
		iv.InterventionDesc, iv.ReasonForReferral, iv.GivenName = desc, reason, given
		for _, p := range []*profile.Profile{p, narrowP} {
			u, ps := mapping.InterventionToCase(p, mapping.FoldInterventions([]refbridge.Intervention{iv})[0], processingTime())
			if ps != nil {
				checkProblems(t, ps)
				continue
			}
			agency := u.Case.Services[0].ImplementingAgency
			if agency == "" {
				agency = p.Intake().ImplementingAgency
			}
			assertOnlyAllowed(t, p, profile.KindCase, agency, u.Case)
			if want := mapping.ServiceUniqueID(p.SiteID(), strings.TrimSpace(number)); u.ServiceUniqueID != want || u.Case.Services[0].UniqueID != want {
				t.Fatalf("service id %q, want %q", u.ServiceUniqueID, want)
			}
			if p.Allows(profile.KindCase, agency, "name_first") && u.Case.NameFirst != given {
				t.Fatalf("given name changed: %q → %q", given, u.Case.NameFirst)
			}
			if u.Case.Age != nil && *u.Case.Age < 0 {
				t.Fatalf("negative age %d", *u.Case.Age)
			}
			notes := u.Case.Services[0].ReferralNotes
			if strings.Contains(notes, "\"CreatedBy\"") {
				t.Fatalf("raw comment JSON in notes")
			}
			if utf8.ValidString(desc) && utf8.ValidString(reason) && !utf8.ValidString(notes) {
				t.Fatalf("notes became invalid UTF-8")
			}
		}
	})
}

func FuzzCaseToDTPReferral(f *testing.F) {
	c := fixtureCase(f)
	f.Add("shelter", "female", "2014-03-15", "language2,_english", unhcrService, c.CaseID, "UNICEF", true, true, "+000000000001")
	f.Add("other_please_specify", "unknown_4b34795", "2014-03-15T00:00:00Z", "", unhcrService, c.CaseID, "UNHCR", true, false, "")
	f.Add("gbv_survivor_support", "x", "15/03/2014", "language9", "short", "a#b", "DRC", false, true, "x")
	p, narrowP := withAdminFallback(f), narrow(f)
	users := withPhones(fixtureUsers(f))
	referral := fixtureReferral(f, unhcrService)
	f.Fuzz(func(t *testing.T, serviceType, sex, dob, languages, uniqueID, caseID, agency string, consent, disclosure bool, phone string) {
		in := mapping.ReferralInput{Case: cloneCase(c), ServiceUniqueID: uniqueID, Referral: referral, Users: users}
		cs := &in.Case
		cs.Services[1].ServiceType, cs.Services[1].UniqueID = serviceType, uniqueID
		in.Referral.ServiceRecordID = uniqueID
		cs.Sex, cs.DateOfBirth, cs.CaseID, cs.OwnedByAgencyID, cs.TelephoneCurrent = sex, dob, caseID, agency, phone
		cs.Language = nil
		if languages != "" {
			cs.Language = strings.Split(languages, ",")
		}
		cs.ConsentForServices, cs.DisclosureOtherOrgs = &consent, &disclosure
		for _, p := range []*profile.Profile{p, narrowP} {
			r, ps := mapping.CaseToDTPReferral(p, in)
			if ps != nil {
				checkProblems(t, ps)
				continue
			}
			if !consent || !disclosure {
				t.Fatalf("referral sent without consent")
			}
			assertOnlyAllowed(t, p, profile.KindDTPReferral, agency, r)
			if r.ID != caseID+"#"+uniqueID[len(uniqueID)-12:] {
				t.Fatalf("id %q", r.ID)
			}
			// The contact block is one user's record, never a mix.
			whole := false
			for _, u := range users {
				if u.FullName == r.FullName && u.Email == r.Email && *u.Phone == r.Phone && u.Position == r.Position {
					whole = true
				}
			}
			if !whole && p.Allows(profile.KindDTPReferral, agency, "full_name") {
				t.Fatalf("contact mixes user records")
			}
		}
	})
}

func FuzzDTPDecisionToReferral(f *testing.F) {
	for _, d := range decodeJSON[refbridge.DecisionBatch](f, fixture(f, "dtp-decision-inbound.json")).Interventions {
		f.Add(d.OrgReferralID, d.ReviewDecision, d.RejectionReason, d.RejectionComment, d.RejectionCommentOK)
	}
	f.Add("c0c0c0c0-0000-4000-8000-000000000001#0A1B2C3D4E5F", "125080001", "", "", "<p>right spelling</p>")
	f.Add("#", "accepted", "125080009", "x", "y")
	p := gambella(f)
	f.Fuzz(func(t *testing.T, orgID, decision, reason, comment, commentOK string) {
		d := refbridge.ReferralDecision{OrgReferralID: orgID, ReviewDecision: decision, RejectionReason: reason,
			RejectionComment: comment, RejectionCommentOK: commentOK}
		out, ps := mapping.DTPDecisionToReferral(p, d)
		if ps != nil {
			checkProblems(t, ps)
			return
		}
		assertOnlyAllowed(t, p, profile.KindReferralDecision, "", out.Patch)
		if s := out.Patch.Status; s != refbridge.ReferralAccepted && s != refbridge.ReferralRejected {
			t.Fatalf("status %q written into Primero", s)
		}
		if out.Patch.Status == refbridge.ReferralAccepted && out.Patch.RejectedReason != "" {
			t.Fatalf("acceptance carries a rejection reason")
		}
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(orgID)), out.CaseID+"#") || len(out.ServiceSuffix) != 12 {
			t.Fatalf("ids %q %q from %q", out.CaseID, out.ServiceSuffix, orgID)
		}
	})
}

func FuzzServiceDecisionToDTP(f *testing.F) {
	c := fixtureCase(f)
	for _, s := range c.Services {
		f.Add(s.UniqueID, s.UNHCRReferralStatus, s.UNHCRRejectionReason, s.InterventionNumber, c.CaseID, c.OwnedBy)
	}
	f.Add(flow1Service, "rejected", "Reason", "N-1", "", "")
	p := gambella(f)
	f.Fuzz(func(t *testing.T, uniqueID, status, reason, number, caseID, owner string) {
		in := mapping.ServiceDecisionInput{Case: cloneCase(c), ServiceUniqueID: uniqueID}
		in.Case.CaseID, in.Case.OwnedBy = caseID, owner
		s := &in.Case.Services[0]
		s.UniqueID, s.UNHCRReferralStatus, s.UNHCRRejectionReason, s.InterventionNumber = uniqueID, status, reason, number
		out, ps := mapping.ServiceDecisionToDTP(p, in)
		if ps != nil {
			checkProblems(t, ps)
			return
		}
		assertOnlyAllowed(t, p, profile.KindDTPStatus, in.Case.OwnedByAgencyID, out)
		if out.InterventionNumber == "" || (out.Status != refbridge.StatusAcknowledged && out.Status != refbridge.StatusRejected) {
			t.Fatalf("decision %+v", out)
		}
		// The failure callback built from any problems must also stay in
		// its allow-list.
		assertOnlyAllowed(t, p, profile.KindDTPStatus, "", mapping.FailureCallback(p, number, []refbridge.Problem{{Field: status, Rule: reason}}))
	})
}

// cloneCase copies c deeply enough for a fuzz iteration to edit it, so the
// fixtures are decoded once per target rather than once per input.
func cloneCase(c refbridge.Case) refbridge.Case {
	c.Services = slices.Clone(c.Services)
	c.Language = slices.Clone(c.Language)
	return c
}

// checkProblems asserts every problem is complete: a field or the input, a
// rule from the vocabulary, and a sentence.
func checkProblems(t *testing.T, ps []refbridge.Problem) {
	t.Helper()
	for _, p := range ps {
		if p.Field == "" || p.Detail == "" {
			t.Fatalf("incomplete problem %+v", p)
		}
		known := false
		for _, r := range profile.Rules() {
			known = known || r == p.Rule
		}
		if !known {
			t.Fatalf("problem rule %q is not in profile.Rules()", p.Rule)
		}
	}
}
