package mapping_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/mapping"
	"refbridge/profile"
)

func date(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		birth, now string
		want       int
	}{
		{"2014-03-15T00:00:00Z", "2024-03-14T23:59:59Z", 9},
		{"2014-03-15T00:00:00Z", "2024-03-15T00:00:00Z", 10},
		// Born on a leap day: a year older on 1 March in common years.
		{"2016-02-29T00:00:00Z", "2017-02-28T12:00:00Z", 0},
		{"2016-02-29T00:00:00Z", "2017-03-01T00:00:00Z", 1},
		{"2016-02-29T00:00:00Z", "2020-02-28T00:00:00Z", 3},
		{"2016-02-29T00:00:00Z", "2020-02-29T00:00:00Z", 4},
		{"2016-02-29T00:00:00Z", "2024-05-10T12:00:00Z", 8},
		// Ages count on the calendar date where now is: 00:30 in Addis Ababa
		// is already the birthday while UTC is still the day before.
		{"2014-03-15T00:00:00Z", "2024-03-15T00:30:00+03:00", 10},
		{"2014-03-15T00:00:00Z", "2024-03-14T21:30:00Z", 9},
		{"2024-05-10T00:00:00Z", "2024-05-10T00:00:00Z", 0},
	}
	for _, tt := range tests {
		if got := mapping.Age(date(t, tt.birth), date(t, tt.now)); got != tt.want {
			t.Errorf("Age(%s, %s) = %d, want %d", tt.birth, tt.now, got, tt.want)
		}
	}
}

func TestHTMLToText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{"<p>Synthetic test referral description</p>", "Synthetic test referral description"},
		{"<p>one</p><p>two</p>", "one\ntwo"},
		{"line<br>break<br/>again", "line\nbreak\nagain"},
		{"<p> spaced \t out </p>\n\n<p>next</p>", "spaced out\nnext"},
		{"a<script>alert('x')</script>b", "ab"},
		{"a<SCRIPT type=\"text/javascript\">var s = '</p>';</SCRIPT >b", "ab"},
		{"a<style>p { color: red }</style>b", "ab"},
		{"a<script>never closed", "a"},
		{"keep <!-- a comment --> this", "keep this"},
		{"&amp;lt;b&amp;gt; stays text once", "&lt;b&gt; stays text once"},
		{"&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"},
		{"age < 5 and > 2", "age < 5 and > 2"},
		{`<a title="x > y" href='z'>link</a> text`, "link text"},
		{"text <p class='never closed", "text"},
		{"non&nbsp;breaking", "non breaking"},
		{"<p>ሰላም مرحبا Łódź 你好</p>", "ሰላም مرحبا Łódź 你好"},
		{"<b>bold</b><i>italic</i>", "bolditalic"},
		{"<", "<"},
		{"</", "</"},
	}
	for _, tt := range tests {
		if got := mapping.HTMLToText(tt.in); got != tt.want {
			t.Errorf("HTMLToText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestServiceUniqueID(t *testing.T) {
	t.Parallel()
	// Pinned: computed independently with Python's uuid.uuid5 over the same
	// namespace and name. A change here re-keys every live service.
	if got := mapping.ServiceUniqueID("gambella", "TST-24-PRTITV-0000001"); got != "36a2b998-afa9-59c6-a041-647afb3afbd2" {
		t.Fatalf("ServiceUniqueID changed: %s", got)
	}
	v5 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]string{}
	for _, in := range [][2]string{{"gambella", "A-1"}, {"gambella", "A-2"}, {"kakuma", "A-1"}, {"gambella", "A-1/x"}, {"gambellaA", "-1"}} {
		id := mapping.ServiceUniqueID(in[0], in[1])
		if !v5.MatchString(id) {
			t.Errorf("%v: %s is not a lower-case version 5 UUID", in, id)
		}
		if id != mapping.ServiceUniqueID(in[0], in[1]) {
			t.Errorf("%v: not deterministic", in)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%v and %s share %s", in, prev, id)
		}
		seen[id] = in[0] + "/" + in[1]
	}
}

func TestFoldInterventions(t *testing.T) {
	t.Parallel()
	base := interventions(t)[0]
	otherLanguage := base
	otherLanguage.Language = &refbridge.Lookup{Name: "Dinka, Southeastern"}
	otherNeed := base
	otherNeed.SpecificNeedSubcode = "SC-SC"
	conflicting := base
	conflicting.GivenName = "Someone else"
	conflicting.RegistrationGroup = &refbridge.Lookup{ID: "other", Name: "TST-24-99999"}
	second := interventions(t)[1]
	noNumber := base
	noNumber.InterventionNumber = ""

	folded := mapping.FoldInterventions([]refbridge.Intervention{base, otherLanguage, second, otherNeed, noNumber, noNumber, conflicting})
	if len(folded) != 4 {
		t.Fatalf("got %d interventions, want 4 (one folded, one other, two without number)", len(folded))
	}
	f := folded[0]
	if !slices.Equal(f.Rows, []int{0, 1, 3, 6}) {
		t.Errorf("rows = %v", f.Rows)
	}
	if !slices.Equal(f.Languages, []string{"Nuer", "Dinka, Southeastern"}) || !slices.Equal(f.SpecificNeeds, []string{"SC-UC", "SC-SC"}) {
		t.Errorf("joins = %v, %v", f.Languages, f.SpecificNeeds)
	}
	if got := problemKeys(f.Problems); !slices.Equal(got, []string{"individuals.progres_registrationgroupid conflict", "individuals.progres_givenname conflict"}) {
		t.Errorf("conflicts = %v", got)
	}
	if folded[1].Intervention.InterventionNumber != second.InterventionNumber || !slices.Equal(folded[2].Rows, []int{4}) || !slices.Equal(folded[3].Rows, []int{5}) {
		t.Errorf("order or separation of unfoldable rows wrong: %+v", folded[1:])
	}
	// The folded intervention carries both languages into Primero, and a
	// conflict refuses it.
	u, ps := mapping.InterventionToCase(gambella(t), mapping.FoldInterventions([]refbridge.Intervention{base, otherLanguage})[0], processingTime())
	if ps != nil || !slices.Equal(u.Case.Language, []string{"language2", "language3"}) {
		t.Errorf("folded languages = %v, problems %v", u.Case.Language, ps)
	}
	if _, ps := mapping.InterventionToCase(gambella(t), f, processingTime()); len(ps) != 2 {
		t.Errorf("conflicting rows gave problems %v, want the 2 conflicts", ps)
	}
}

func TestInterventionToCaseProblems(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	tests := []struct {
		name string
		edit func(iv *refbridge.Intervention)
		want []string
	}{
		{"complete", func(*refbridge.Intervention) {}, nil},
		{"blank family name counts as missing", func(iv *refbridge.Intervention) { iv.FamilyName = "  " },
			[]string{"individuals.progres_familyname required"}},
		{"no intervention number", func(iv *refbridge.Intervention) { iv.InterventionNumber = "" },
			[]string{"progres_interventionnumber required"}},
		{"missing service type is missing, not unknown", func(iv *refbridge.Intervention) { iv.InterventionType = "" },
			[]string{"interventiontype.progres_description required"}},
		{"unknown service type", func(iv *refbridge.Intervention) { iv.InterventionType = "Cash Grant" },
			[]string{"interventiontype.progres_description unknown_code"}},
		{"registration group without a name", func(iv *refbridge.Intervention) { iv.RegistrationGroup = &refbridge.Lookup{ID: "x"} },
			[]string{"individuals.progres_registrationgroupid required"}},
		{"unknown sex", func(iv *refbridge.Intervention) { iv.Sex = "125080004" },
			[]string{"individuals.progres_sex unknown_code"}},
		{"date of birth not a date", func(iv *refbridge.Intervention) { iv.DateOfBirth = "15/03/2014" },
			[]string{"individuals.progres_dateofbirth invalid_date"}},
		{"date of birth impossible", func(iv *refbridge.Intervention) { iv.DateOfBirth = "2014-02-30T00:00:00Z" },
			[]string{"individuals.progres_dateofbirth invalid_date"}},
		{"date of birth tomorrow", func(iv *refbridge.Intervention) { iv.DateOfBirth = "2024-05-11" },
			[]string{"individuals.progres_dateofbirth invalid_date"}},
		{"reason for referral is not JSON", func(iv *refbridge.Intervention) { iv.ReasonForReferral = "[{" },
			[]string{"progres_reasonforreferral format"}},
		{"every problem at once", func(iv *refbridge.Intervention) {
			iv.IndividualID, iv.GivenName, iv.Sex, iv.InterventionStartDate = "", "", "X", "soon"
		}, []string{"individuals.progres_id required", "individuals.progres_givenname required",
			"individuals.progres_sex unknown_code", "progres_interventionstartdate invalid_date"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iv := interventions(t)[0]
			tt.edit(&iv)
			u, ps := mapping.InterventionToCase(p, mapping.FoldInterventions([]refbridge.Intervention{iv})[0], processingTime())
			if got := problemKeys(ps); !slices.Equal(got, tt.want) {
				t.Fatalf("problems = %v, want %v", got, tt.want)
			}
			for _, pr := range ps {
				if strings.Contains(pr.Detail, "Testchild") || strings.Contains(pr.Detail, "2014") {
					t.Errorf("problem detail quotes a personal value: %q", pr.Detail)
				}
			}
			if ps == nil && u.ServiceUniqueID != mapping.ServiceUniqueID("gambella", iv.InterventionNumber) {
				t.Errorf("service id %s not derived from site and intervention number", u.ServiceUniqueID)
			}
		})
	}
}

func TestInterventionToCaseFollowsProfile(t *testing.T) {
	t.Parallel()
	iv := interventions(t)[2] // language "Testish", which no table knows
	one := func(p *profile.Profile, iv refbridge.Intervention) (mapping.CaseUpsert, []refbridge.Problem) {
		return mapping.InterventionToCase(p, mapping.FoldInterventions([]refbridge.Intervention{iv})[0], processingTime())
	}
	if u, ps := one(gambella(t), iv); ps != nil || !slices.Equal(u.Case.Language, []string{"language6"}) {
		t.Errorf("with the default: %v %v", u.Case.Language, ps)
	}
	noDefault := gambellaWith(t, "  default_from_progres: language6\n", "")
	if _, ps := one(noDefault, iv); !slices.Equal(problemKeys(ps), []string{"languages.progres_languagecodeid.Name unknown_code"}) {
		t.Errorf("without a default: %v", ps)
	}

	authors := gambellaWith(t, "comment_authors: false", "comment_authors: true")
	u, _ := one(authors, interventions(t)[0])
	if notes := u.Case.Services[0].ReferralNotes; notes != "Synthetic test referral description\nSynthetic reason for referral (Test Officer, 2024-05-06)" {
		t.Errorf("notes with authors allowed = %q", notes)
	}
	u, _ = one(gambella(t), interventions(t)[0])
	if notes := u.Case.Services[0].ReferralNotes; strings.Contains(notes, "Test Officer") || strings.Contains(notes, "CreatedBy") {
		t.Errorf("staff names reached Primero: %q", notes)
	}

	// Specific needs become protection concerns only once the ISP lets them in.
	if u.Case.ProtectionConcerns != nil {
		t.Errorf("protection concerns sent without ISP: %v", u.Case.ProtectionConcerns)
	}
	concerns := gambellaWith(t, "      - language\n      - services_section.unique_id", "      - language\n      - protection_concerns\n      - services_section.unique_id")
	if u, ps := one(concerns, interventions(t)[0]); ps != nil || !slices.Equal(u.Case.ProtectionConcerns, []string{"unaccompanied"}) {
		t.Errorf("protection concerns = %v %v", u.Case.ProtectionConcerns, ps)
	}
	unknownNeed := interventions(t)[0]
	unknownNeed.SpecificNeedSubcode = "ZZ-ZZ"
	if _, ps := one(concerns, unknownNeed); !slices.Equal(problemKeys(ps), []string{"spnsubcategory2code unknown_code"}) {
		t.Errorf("unknown specific need: %v", ps)
	}

	// A profile may ask proGres for a consent field; Gambella's UNHCR
	// attests consent instead.
	askPriority := gambellaWith(t, "    attested_by: UNHCR\n", "    all: [{field: intervention.childprotection.progres_priority, equals: \"125080001\"}]\n")
	if _, ps := one(askPriority, interventions(t)[1]); !slices.Equal(problemKeys(ps), []string{"childprotection.progres_priority consent_missing", "individuals.progres_familyname required"}) {
		t.Errorf("inbound consent rule: %v", ps)
	}
	if _, ps := one(askPriority, interventions(t)[0]); ps != nil {
		t.Errorf("inbound consent given: %v", ps)
	}

	// A partner-requested intervention still records UNHCR as requester, so
	// its decision reaches DTP (contract §8.12).
	if u, _ := one(gambella(t), interventions(t)[2]); u.Case.Services[0].RequestAgency != "UNHCR" {
		t.Errorf("service_request_agency = %q", u.Case.Services[0].RequestAgency)
	}
}

func TestCaseUpsertPatch(t *testing.T) {
	t.Parallel()
	u, ps := mapping.InterventionToCase(gambella(t), mapping.FoldInterventions(interventions(t)[:1])[0], processingTime())
	if ps != nil {
		t.Fatal(ps)
	}
	edited := fixtureCase(t) // the same child, edited by a case worker since
	edited.NameNickname = ""
	edited.Language = nil
	edited.Status = "closed"
	tests := []struct {
		name        string
		existing    refbridge.Case
		wantChanged bool
		check       func(t *testing.T, patch refbridge.Case)
	}{
		{"empty case gets everything but record fields", refbridge.Case{}, true, func(t *testing.T, patch refbridge.Case) {
			if patch.NameFirst != "Testchild" || len(patch.Services) != 1 || patch.Age == nil {
				t.Errorf("patch misses identity or service: %+v", patch)
			}
		}},
		{"case worker's values and the held service are kept", edited, true, func(t *testing.T, patch refbridge.Case) {
			if patch.NameFirst != "" || patch.Sex != "" || patch.Services != nil {
				t.Errorf("patch overwrites: %+v", patch)
			}
			if patch.NameNickname != "Fixie" || !slices.Equal(patch.Language, []string{"language2"}) {
				t.Errorf("patch does not fill empty fields: %+v", patch)
			}
		}},
		{"re-delivery onto its own service changes nothing", func() refbridge.Case {
			c := u.Case
			return c
		}(), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			patch, changed := u.Patch(tt.existing)
			if changed != tt.wantChanged {
				t.Fatalf("changed = %v, want %v (%+v)", changed, tt.wantChanged, patch)
			}
			if patch.OwnedBy != "" || patch.Status != "" || patch.ModuleID != "" || patch.CaseID != "" {
				t.Errorf("patch carries record fields: %+v", patch)
			}
			if tt.check != nil {
				tt.check(t, patch)
			}
		})
	}
}

func TestCaseToDTPReferral(t *testing.T) {
	t.Parallel()
	p := withAdminFallback(t)
	base := func(t *testing.T) mapping.ReferralInput {
		return mapping.ReferralInput{Case: fixtureCase(t), ServiceUniqueID: unhcrService, Referral: fixtureReferral(t, unhcrService), Users: fixtureUsers(t)}
	}
	ownerPhone := "+000000000555"
	tests := []struct {
		name    string
		profile *profile.Profile
		edit    func(in *mapping.ReferralInput)
		want    []string
		check   func(t *testing.T, r refbridge.DTPReferral)
	}{
		{"owner without phone: the fallback's whole record", p, func(*mapping.ReferralInput) {}, nil, func(t *testing.T, r refbridge.DTPReferral) {
			if r.FullName != "Test CPIMS Admin" || r.Email != "cpims.admin@example.org" || r.Phone != "+000000000900" || r.Position != "System Administrator" {
				t.Errorf("contact mixes records: %s / %s / %s / %s", r.FullName, r.Email, r.Phone, r.Position)
			}
		}},
		{"complete owner: the owner's whole record", p, func(in *mapping.ReferralInput) { in.Users[0].Phone = &ownerPhone }, nil, func(t *testing.T, r refbridge.DTPReferral) {
			if r.FullName != "Test Caseworker" || r.Email != "test.caseworker@example.org" || r.Phone != ownerPhone || r.Position != "Test Case Worker" {
				t.Errorf("contact is not the owner's: %s / %s / %s / %s", r.FullName, r.Email, r.Phone, r.Position)
			}
		}},
		{"disabled owner is not a contact", p, func(in *mapping.ReferralInput) {
			in.Users[0].Phone, in.Users[0].Disabled = &ownerPhone, new(true)
		}, nil, func(t *testing.T, r refbridge.DTPReferral) {
			if r.FullName != "Test CPIMS Admin" {
				t.Errorf("disabled owner used as contact")
			}
		}},
		{"no usable record", gambella(t), func(*mapping.ReferralInput) {}, []string{"users contact_missing"}, nil},
		{"agency from the case", p, func(in *mapping.ReferralInput) { in.Case.OwnedByAgencyID = "UNHCR" }, nil, func(t *testing.T, r refbridge.DTPReferral) {
			if r.OwnedByAgencyID != "UNHCR" || r.ServiceImplementingAgency != "UNHCR" {
				t.Errorf("agencies = %s, %s", r.OwnedByAgencyID, r.ServiceImplementingAgency)
			}
		}},
		{"unknown agency", p, func(in *mapping.ReferralInput) { in.Case.OwnedByAgencyID = "DRC" }, []string{"case.owned_by_agency_id unknown_code"}, nil},
		{"no languages: null", p, func(in *mapping.ReferralInput) { in.Case.Language = nil }, nil, func(t *testing.T, r refbridge.DTPReferral) {
			if r.Language != nil {
				t.Errorf("language = %q", *r.Language)
			}
		}},
		{"unmapped language and sex", p, func(in *mapping.ReferralInput) {
			in.Case.Language = []string{"language2", "language9"}
			in.Case.Sex = "intersex_x"
		}, []string{"case.sex unknown_code", "case.language[1] unknown_code"}, nil},
		{"unmapped service type", p, func(in *mapping.ReferralInput) { in.Case.Services[1].ServiceType = "gbv_survivor_support" },
			[]string{"case.services_section[1].service_type unknown_code"}, nil},
		{"consent withheld", p, func(in *mapping.ReferralInput) { in.Case.DisclosureOtherOrgs = new(false) },
			[]string{"case.disclosure_other_orgs consent_missing"}, nil},
		{"override refused by Gambella", p, func(in *mapping.ReferralInput) {
			in.Case.ConsentForServices, in.Referral.ConsentOverridden = nil, new(true)
		}, []string{"case.consent_for_services consent_missing"}, nil},
		{"override accepted where the profile allows it", gambellaWith(t,
			"fallback_user: "+gambellaOwner, "fallback_user: test_admin",
			"    # Primero lets a permitted user", "    override: [{field: referral.consent_overridden, equals: true}]\n    # Primero lets a permitted user"),
			func(in *mapping.ReferralInput) {
				in.Case.ConsentForServices, in.Referral.ConsentOverridden = nil, new(true)
			}, nil, nil},
		{"revoked referral", p, func(in *mapping.ReferralInput) { in.Referral.Status = refbridge.ReferralRevoked }, []string{"referral.status revoked"}, nil},
		{"referral of another service", p, func(in *mapping.ReferralInput) { in.Referral.ServiceRecordID = otherService },
			[]string{"referral.service_record_id mismatch"}, nil},
		{"unknown service id", p, func(in *mapping.ReferralInput) {
			in.ServiceUniqueID = "00000000-0000-4000-8000-000000000000"
		}, []string{"service_unique_id not_found"}, nil},
		{"service for another agency", p, func(in *mapping.ReferralInput) {
			in.ServiceUniqueID, in.Referral = otherService, fixtureReferral(t, otherService)
		}, []string{"case.services_section[2].service_implementing_agency not_referable"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := base(t)
			tt.edit(&in)
			r, ps := mapping.CaseToDTPReferral(tt.profile, in)
			if got := problemKeys(ps); !slices.Equal(got, tt.want) {
				t.Fatalf("problems = %v, want %v", got, tt.want)
			}
			if ps != nil {
				return
			}
			if r.ID != in.Case.CaseID+"#0a1b2c3d4e5f" || r.RequestType != refbridge.RequestTypeIncomingReferral {
				t.Errorf("id %q, request_type %q", r.ID, r.RequestType)
			}
			assertOnlyAllowed(t, tt.profile, profile.KindDTPReferral, in.Case.OwnedByAgencyID, r)
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestISPNarrowsEveryFlow(t *testing.T) {
	t.Parallel()
	p := narrow(t)
	u, ps := mapping.InterventionToCase(p, mapping.FoldInterventions(interventions(t)[:1])[0], processingTime())
	if ps != nil {
		t.Fatal(ps)
	}
	assertOnlyAllowed(t, p, profile.KindCase, "UNICEF", u.Case)
	if u.Case.NameFirst != "" || u.Case.DateOfBirth != "" || u.Case.Services[0].ReferralNotes != "" || u.Case.Services[0].UniqueID == "" {
		t.Errorf("narrow ISP not applied to the case: %+v", u.Case)
	}
	r, ps := mapping.CaseToDTPReferral(p, mapping.ReferralInput{Case: fixtureCase(t), ServiceUniqueID: unhcrService,
		Referral: fixtureReferral(t, unhcrService), Users: withPhones(fixtureUsers(t))})
	if ps != nil {
		t.Fatal(ps)
	}
	assertOnlyAllowed(t, p, profile.KindDTPReferral, "UNICEF", r)
	if r.NameFirst != "" || r.NameMiddle != nil || r.DateOfBirth != "" || r.Language != nil || r.UNHCRIndividualNo == "" {
		t.Errorf("narrow ISP not applied to the referral: %+v", r)
	}
}

func withPhones(users []refbridge.User) []refbridge.User {
	for i := range users {
		if users[i].Phone == nil {
			users[i].Phone = new("+000000000777")
		}
	}
	return users
}

func TestDTPDecisionToReferral(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	ok := "c0c0c0c0-0000-4000-8000-000000000002#1A2B3C4D5E6F"
	tests := []struct {
		name       string
		d          refbridge.ReferralDecision
		want       []string
		wantStatus string
		wantReason string
	}{
		{"accepted", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080000", RejectionReason: "125080002", RejectionComment: "ignored"}, nil, "accepted", ""},
		{"rejected, misspelt comment key", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080001", RejectionReason: "125080000", RejectionComment: "Not in proGres"}, nil, "rejected", "Individual Not Found: Not in proGres"},
		{"rejected, correctly spelt comment key", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080001", RejectionReason: "125080000", RejectionCommentOK: "Not in proGres"}, nil, "rejected", "Individual Not Found: Not in proGres"},
		{"rejected without comment", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080001", RejectionReason: "125080002"}, nil, "rejected", "Not applicable"},
		{"rejected without reason", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080001", RejectionComment: "<p>see file</p>"}, nil, "rejected", "see file"},
		{"unknown decision is not written through", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080003"}, []string{"progres_reviewdecision unknown_code"}, "", ""},
		{"text decision", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "accepted"}, []string{"progres_reviewdecision unknown_code"}, "", ""},
		{"unknown reason", refbridge.ReferralDecision{OrgReferralID: ok, ReviewDecision: "125080001", RejectionReason: "125080009"}, []string{"progres_interoperabiltyreferralrejectionreason unknown_code"}, "", ""},
		{"everything missing", refbridge.ReferralDecision{}, []string{"progres_orgreferralid required", "progres_reviewdecision required"}, "", ""},
		{"id without suffix", refbridge.ReferralDecision{OrgReferralID: "c0c0c0c0-0000-4000-8000-000000000002#", ReviewDecision: "125080000"}, []string{"progres_orgreferralid format"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ps := mapping.DTPDecisionToReferral(p, tt.d)
			if keys := problemKeys(ps); !slices.Equal(keys, tt.want) {
				t.Fatalf("problems = %v, want %v", keys, tt.want)
			}
			if ps != nil {
				return
			}
			if got.Patch.Status != tt.wantStatus || got.Patch.RejectedReason != tt.wantReason {
				t.Errorf("patch = %+v", got.Patch)
			}
			if got.CaseID != "c0c0c0c0-0000-4000-8000-000000000002" || got.ServiceSuffix != "1a2b3c4d5e6f" {
				t.Errorf("ids = %q %q", got.CaseID, got.ServiceSuffix)
			}
		})
	}
}

func TestServiceDecisionToDTP(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	tests := []struct {
		name       string
		edit       func(s *refbridge.Service)
		want       []string
		wantStatus string
		wantReason string
	}{
		{"accepted", func(*refbridge.Service) {}, nil, refbridge.StatusAcknowledged, "No reason specified."},
		{"accepted with a stale reason", func(s *refbridge.Service) { s.UNHCRRejectionReason = "old" }, nil, refbridge.StatusAcknowledged, "No reason specified."},
		{"rejected with a reason", func(s *refbridge.Service) {
			s.UNHCRReferralStatus, s.UNHCRRejectionReason = "rejected", "Family already reunified"
		}, nil, refbridge.StatusRejected, "Family already reunified"},
		{"rejected without reason", func(s *refbridge.Service) { s.UNHCRReferralStatus = "rejected" }, nil, refbridge.StatusRejected, "No reason specified."},
		{"still pending", func(s *refbridge.Service) { s.UNHCRReferralStatus = "pending" },
			[]string{"case.services_section[0].unhcr_referral_status not_decided"}, "", ""},
		{"unknown status", func(s *refbridge.Service) { s.UNHCRReferralStatus = "maybe" },
			[]string{"case.services_section[0].unhcr_referral_status unknown_code"}, "", ""},
		{"not from proGres", func(s *refbridge.Service) { s.InterventionNumber = "" },
			[]string{"case.services_section[0].progres_interventionnumber not_from_progres"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := fixtureCase(t)
			tt.edit(&c.Services[0])
			got, ps := mapping.ServiceDecisionToDTP(p, mapping.ServiceDecisionInput{Case: c, ServiceUniqueID: flow1Service})
			if keys := problemKeys(ps); !slices.Equal(keys, tt.want) {
				t.Fatalf("problems = %v, want %v", keys, tt.want)
			}
			if ps != nil {
				return
			}
			if got.Status != tt.wantStatus || got.ClosureReason != tt.wantReason || got.RequestType != refbridge.RequestTypeDecisionOutgoingReferral {
				t.Errorf("status = %+v", got)
			}
		})
	}
}

func TestClosureReason(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	ps := []refbridge.Problem{
		{Field: "individuals.progres_familyname", Rule: profile.RuleRequired},
		{Field: "interventiontype.progres_description", Rule: profile.RuleUnknownCode},
		{Field: "individuals.progres_dateofbirth", Rule: profile.RuleRequired},
		{Field: "x", Rule: "rule_without_text"},
	}
	want := "Intervention referral is missing fields required for sending to Primero: individuals.progres_familyname, individuals.progres_dateofbirth. Please include missing fields and re-send the request. " +
		"Intervention referral has values that are not in the agreed mapping: interventiontype.progres_description. Please see the mapping specifications. " +
		"Intervention referral has provided invalid data: x. Please review the data values shared and re-send the request."
	if got := mapping.ClosureReason(p, ps); got != want {
		t.Errorf("closure reason:\n got %q\nwant %q", got, want)
	}
	cb := mapping.FailureCallback(p, "TST-24-PRTITV-0000002", ps)
	if cb.CaseID != nil || cb.PrimeroUser != nil || cb.Status != refbridge.StatusDeliveryFail || cb.RequestType != refbridge.RequestTypeFeedback {
		t.Errorf("failure callback = %+v", cb)
	}
	ok := mapping.SuccessCallback(p, "TST-24-PRTITV-0000001", "c0c0c0c0-0000-4000-8000-000000000001", gambellaOwner)
	if ok.Status != refbridge.StatusPendingAcknowledgement || ok.RequestType != "" || ok.CaseID == nil || *ok.PrimeroUser != gambellaOwner {
		t.Errorf("success callback = %+v", ok)
	}
}

func TestRunRejectsMalformedInput(t *testing.T) {
	t.Parallel()
	p := gambella(t)
	tests := []struct {
		flow, input string
		want        []string
	}{
		{mapping.FlowInterventionToCase, `{"individuals.progres_id": `, []string{"input json"}},
		{mapping.FlowInterventionToCase, `[]`, []string{"input json"}},
		{mapping.FlowInterventionToCase, `{"individuals.progres_sex": 125080000}`, []string{"individuals.progres_sex json"}},
		{mapping.FlowCaseToDTPReferral, `{"case": {"consent_for_services": "yes"}}`, []string{"case.consent_for_services json"}},
		{mapping.FlowDTPDecisionToReferral, `{"progres_reviewdecision": ["125080000"]}`, []string{"progres_reviewdecision json"}},
	}
	for _, tt := range tests {
		out, ps, err := mapping.Run(p, tt.flow, []byte(tt.input), processingTime())
		if err != nil || out != nil || !slices.Equal(problemKeys(ps), tt.want) {
			t.Errorf("%s %s: out %s, problems %v, err %v; want problems %v", tt.flow, tt.input, out, problemKeys(ps), err, tt.want)
		}
		for _, pr := range ps {
			if strings.Contains(pr.Detail, "125080000") || strings.Contains(pr.Detail, "yes") {
				t.Errorf("problem quotes the input: %q", pr.Detail)
			}
		}
	}
	if _, _, err := mapping.Run(p, "case-to-nowhere", []byte(`{}`), processingTime()); refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
		t.Errorf("unknown flow: err = %v", err)
	}
}
