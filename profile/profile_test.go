package profile_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"refbridge"
	"refbridge/profile"
)

func gambellaSource(t *testing.T) string {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// edited applies old, new text pairs to src; each old text must occur once.
func edited(t *testing.T, src string, edits ...string) string {
	t.Helper()
	for i := 0; i+1 < len(edits); i += 2 {
		if n := strings.Count(src, edits[i]); n != 1 {
			t.Fatalf("edit %q occurs %d times, want 1", edits[i], n)
		}
		src = strings.Replace(src, edits[i], edits[i+1], 1)
	}
	return src
}

func errorsOf(fs []profile.Finding) []profile.Finding {
	var out []profile.Finding
	for _, f := range fs {
		if f.Severity == profile.Error {
			out = append(out, f)
		}
	}
	return out
}

func TestGambellaIsValid(t *testing.T) {
	t.Parallel()
	src := gambellaSource(t)
	p, findings := profile.Check([]byte(src))
	if p == nil {
		t.Fatalf("gambella is invalid: %v", errorsOf(findings))
	}
	marks := len(regexp.MustCompile(`(?m)^\s+review: true`).FindAllString(src, -1))
	if len(findings) != marks {
		t.Errorf("%d findings, want one warning per review mark (%d)", len(findings), marks)
	}
	for _, f := range findings {
		if f.Severity != profile.Warning || !strings.HasSuffix(f.Path, ".review") || f.Line == 0 || !strings.Contains(f.Message, "needs review") {
			t.Errorf("unexpected finding: %s", f)
		}
	}
	if p.SiteID() != "gambella" || p.Intake().Owner != "progresv4_primero_intake@cpims-gambella.primero.org" {
		t.Errorf("site %q, intake owner %q", p.SiteID(), p.Intake().Owner)
	}
}

// brokenEdits each break one rule `profile check` enforces, with the path
// and words of the one error it must report.
func brokenEdits() []struct {
	name, old, new, path, says string
} {
	return []struct {
		name, old, new, path, says string
	}{
		{"unknown agency referenced by a service", "    progres: Relocation\n", "    progres: Relocation\n    implementing_agency: DRC\n",
			"$.services[21].implementing_agency", `unknown agency "DRC"`},
		{"duplicate code", "  - progres: \"125080001\"", "  - progres: \"125080000\"", "$.sex[1].progres", `duplicate proGres sex code "125080000"`},
		{"service mapped in one direction only", "    progres: Shelter\n", "", "$.services[18].progres", "mapped in one direction only"},
		{"proGres name coming back as two services", "    inbound_as: education_formal\n", "", "$.services[5].progres", `duplicate proGres service "Education Service"`},
		{"inbound_as naming no service", "    inbound_as: livelihoods\n", "    inbound_as: livelihood\n", "$.services[10].inbound_as", `"livelihood" is not a Primero service`},
		{"allow-listed field not in the contract", "      - name_nickname\n      - date_of_birth\n      - age\n", "      - nick_name\n      - date_of_birth\n      - age\n",
			"$.isp.progres_to_primero.case[9]", `"nick_name" is not a field`},
		{"field the peer needs left out of the allow-list", "      - language\n      - id\n", "      - language\n",
			"$.isp.primero_to_progres.referral", `"id" must be allowed`},
		{"empty consent rule", "    attested_by: UNHCR\n", "", "$.consent.progres_to_primero", "the consent rule is empty"},
		{"consent field not in the contract", "field: case.consent_for_services", "field: case.consent_for_service",
			"$.consent.primero_to_progres.all[0].field", `"consent_for_service" is not a case field`},
		{"consent value of the wrong type", "      - field: case.disclosure_other_orgs\n        equals: true", "      - field: case.disclosure_other_orgs\n        equals: \"yes\"",
			"$.consent.primero_to_progres.all[1].equals", "write equals: true"},
		{"label missing a translation another label has", "    label: Alternative care\n", "    label: {en: Alternative care, fr: Prise en charge alternative}\n",
			"$.services[1].label", `no "fr" translation`},
		{"misspelt key", "    review: true  # DTP has no cash service", "    reveiw: true  # DTP has no cash service", "$.services[10].reveiw", `unknown key "reveiw"`},
		{"list written as a value", "    aliases: [BID, BIA]\n", "    aliases: BID\n", "$.services[1].aliases", "must be a list"},
		{"unknown callback rule", "    format: \"Intervention", "    formatting: \"Intervention", "$.callbacks.delivery_failed.formatting", `unknown problem rule "formatting"`},
		{"language default not in the table", "default_from_progres: language6", "default_from_progres: language9", "$.languages.default_from_progres", `"language9" is not a Primero language`},
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	t.Parallel()
	src := gambellaSource(t)
	for _, tt := range brokenEdits() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, findings := profile.Check([]byte(edited(t, src, tt.old, tt.new)))
			errs := errorsOf(findings)
			if p != nil || len(errs) == 0 {
				t.Fatalf("the broken profile passed the check")
			}
			found := false
			for _, f := range errs {
				if f.Path == tt.path && strings.Contains(f.Message, tt.says) && f.Line > 0 {
					found = true
				} else if tt.name != "label missing a translation another label has" {
					t.Errorf("other error: %s", f)
				}
			}
			if !found {
				t.Errorf("no error at %s saying %q; got %v", tt.path, tt.says, errs)
			}
		})
	}
	t.Run("all at once", func(t *testing.T) {
		t.Parallel()
		broken := src
		for _, tt := range brokenEdits() {
			broken = edited(t, broken, tt.old, tt.new)
		}
		_, findings := profile.Check([]byte(broken))
		paths := map[string]bool{}
		for _, f := range errorsOf(findings) {
			paths[f.Path] = true
		}
		for _, tt := range brokenEdits() {
			if !paths[tt.path] {
				t.Errorf("with every edit applied, %s (%s) is not reported", tt.path, tt.name)
			}
		}
	})
}

func TestCheckInvalidYAML(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, says string }{
		{"syntax", "version: 1\nsite: [unclosed\n", "not valid YAML"},
		{"empty", "", "exactly one non-empty YAML document"},
		{"alias", "version: 1\nsite: &s {id: x}\nintake: *s\n", "aliases"},
		{"scalar document", "just text", "must be a mapping"},
	}
	for _, tt := range tests {
		p, findings := profile.Check([]byte(tt.src))
		if p != nil || !slices.ContainsFunc(findings, func(f profile.Finding) bool { return strings.Contains(f.Message, tt.says) }) {
			t.Errorf("%s: findings %v, want one saying %q", tt.name, findings, tt.says)
		}
	}
	_, err := profile.Parse([]byte("version: 2\n"))
	if refbridge.ErrorCodeOf(err) != refbridge.EInvalid || len(refbridge.ErrorProblems(err)) == 0 {
		t.Errorf("Parse of an invalid profile: %v", err)
	}
}

// TestFieldListsAreTheWire checks the allow-list field catalogue against the
// fixtures: derived from the domain types, it names exactly the keys the
// peers exchange.
func TestFieldListsAreTheWire(t *testing.T) {
	t.Parallel()
	keys := func(file string) []string {
		raw, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", file))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if got, want := sorted(profile.Fields(profile.KindDTPReferral)), keys("dtp-outbound-referral.json"); !slices.Equal(got, want) {
		t.Errorf("referral fields %v, wire %v", got, want)
	}
	if got, want := sorted(profile.Fields(profile.KindDTPStatus)), keys("dtp-callback-failure.json"); !slices.Equal(got, want) {
		t.Errorf("status fields %v, wire %v", got, want)
	}
	caseFields := profile.Fields(profile.KindCase)
	for _, f := range []string{"name_first", "consent_for_services", "services_section.unique_id", "services_section.progres_interventionnumber"} {
		if !slices.Contains(caseFields, f) {
			t.Errorf("case fields lack %s", f)
		}
	}
	if slices.Contains(caseFields, "services_section") {
		t.Errorf("the subform itself is listed; only its fields may be")
	}
}

func TestRestrict(t *testing.T) {
	t.Parallel()
	src := edited(t, gambellaSource(t), "isp:\n  progres_to_primero:\n", `isp:
  agencies:
    UNICEF:
      progres_to_primero:
        case: [status, unhcr_individual_no, services_section.unique_id, services_section.progres_interventionnumber]
  progres_to_primero:
`)
	p, err := profile.Parse([]byte(src))
	if err != nil {
		t.Fatal(err, refbridge.ErrorProblems(err))
	}
	full := func() refbridge.Case {
		return refbridge.Case{Status: "open", NameFirst: "Testchild", UNHCRIndividualNo: "TST-1", ConsentForServices: new(true),
			Services: []refbridge.Service{{UniqueID: "u", ServiceType: "shelter", InterventionNumber: "N", RequestEmail: "x@example.org"}}}
	}
	general := full()
	profile.Restrict(p, "", &general)
	if general.NameFirst == "" || general.Services[0].ServiceType == "" || general.ConsentForServices != nil || general.Services[0].RequestEmail == "" {
		t.Errorf("general list applied wrongly: %+v", general)
	}
	unicef := full()
	profile.Restrict(p, "UNICEF", &unicef)
	want := refbridge.Case{Status: "open", UNHCRIndividualNo: "TST-1", Services: []refbridge.Service{{UniqueID: "u", InterventionNumber: "N"}}}
	if got, _ := json.Marshal(unicef); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("UNICEF's narrower list: got %s", got)
	}
	status := refbridge.InterventionStatus{CaseID: new("c"), Status: "rejected", ClosureReason: "why"}
	profile.Restrict(p, "", &status)
	if status.ClosureReason != "why" || !p.Allows(profile.KindDTPStatus, "", "closure_reason") || p.Allows(profile.KindCase, "UNICEF", "name_first") {
		t.Errorf("allow-list lookups wrong")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestConsent(t *testing.T) {
	t.Parallel()
	gambella, err := profile.Parse([]byte(gambellaSource(t)))
	if err != nil {
		t.Fatal(err)
	}
	override, err := profile.Parse([]byte(edited(t, gambellaSource(t), "    # Primero lets a permitted user",
		"    override: [{field: referral.consent_overridden, equals: true}]\n    # Primero lets a permitted user")))
	if err != nil {
		t.Fatal(err, refbridge.ErrorProblems(err))
	}
	yes, no := new(true), new(false)
	tests := []struct {
		name           string
		p              *profile.Profile
		dir            profile.Direction
		in             profile.ConsentInput
		ok, overridden bool
		failed         []string
	}{
		{"both given", gambella, profile.PrimeroToProgres,
			profile.ConsentInput{Case: &refbridge.Case{ConsentForServices: yes, DisclosureOtherOrgs: yes}}, true, false, nil},
		{"disclosure refused", gambella, profile.PrimeroToProgres,
			profile.ConsentInput{Case: &refbridge.Case{ConsentForServices: yes, DisclosureOtherOrgs: no}}, false, false, []string{"case.disclosure_other_orgs"}},
		{"nothing recorded", gambella, profile.PrimeroToProgres,
			profile.ConsentInput{Case: &refbridge.Case{}}, false, false, []string{"case.consent_for_services", "case.disclosure_other_orgs"}},
		{"no case at all", gambella, profile.PrimeroToProgres, profile.ConsentInput{}, false, false, []string{"case.consent_for_services", "case.disclosure_other_orgs"}},
		{"override not accepted by Gambella", gambella, profile.PrimeroToProgres,
			profile.ConsentInput{Case: &refbridge.Case{}, Referral: &refbridge.Referral{ConsentOverridden: yes}}, false, false, []string{"case.consent_for_services", "case.disclosure_other_orgs"}},
		{"override accepted where allowed", override, profile.PrimeroToProgres,
			profile.ConsentInput{Case: &refbridge.Case{}, Referral: &refbridge.Referral{ConsentOverridden: yes}}, true, true, nil},
		{"override false", override, profile.PrimeroToProgres,
			profile.ConsentInput{Case: &refbridge.Case{}, Referral: &refbridge.Referral{ConsentOverridden: no}}, false, false, []string{"case.consent_for_services", "case.disclosure_other_orgs"}},
		{"inbound, attested by UNHCR", gambella, profile.ProgresToPrimero,
			profile.ConsentInput{Intervention: &refbridge.Intervention{}}, true, false, nil},
	}
	for _, tt := range tests {
		r := tt.p.Consent(tt.dir, tt.in)
		var failed []string
		for _, f := range r.Failed {
			failed = append(failed, f.Field)
		}
		if r.OK != tt.ok || r.Overridden != tt.overridden || !slices.Equal(failed, tt.failed) || r.Reason == "" {
			t.Errorf("%s: %+v", tt.name, r)
		}
		if ok, reason := tt.p.ConsentHolds(tt.dir, tt.in); ok != tt.ok || reason != r.Reason {
			t.Errorf("%s: ConsentHolds = %v, %q", tt.name, ok, reason)
		}
	}
	if r := gambella.Consent(profile.ProgresToPrimero, profile.ConsentInput{}); r.AttestedBy != "UNHCR" || !strings.Contains(r.Reason, "attested by UNHCR") {
		t.Errorf("attestation not reported: %+v", r)
	}
}

func TestReadNamesAndFiles(t *testing.T) {
	t.Parallel()
	if !slices.Contains(profile.Names(), "gambella") {
		t.Errorf("embedded profiles: %v", profile.Names())
	}
	if _, err := profile.Read("atlantis"); err == nil || !strings.Contains(err.Error(), "gambella") {
		t.Errorf("unknown name: %v", err)
	}
	path := filepath.Join(t.TempDir(), "copy.yaml")
	if err := os.WriteFile(path, []byte(gambellaSource(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Load(path); err != nil {
		t.Errorf("load from file: %v", err)
	}
	if _, err := profile.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Errorf("missing file loaded")
	}
}

func TestLabelText(t *testing.T) {
	t.Parallel()
	l := profile.Label{"en": "Shelter", "fr": "Abri", "am": ""}
	for lang, want := range map[string]string{"fr": "Abri", "am": "Shelter", "ar": "Shelter"} {
		if got := l.Text(lang); got != want {
			t.Errorf("Text(%s) = %q, want %q", lang, got, want)
		}
	}
	if got := (profile.Label{"fr": "Abri", "ar": "مأوى"}).Text("am"); got != "مأوى" {
		t.Errorf("fallback to the first language: %q", got)
	}
}
