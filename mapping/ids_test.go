package mapping_test

import (
	"strings"
	"testing"

	"refbridge"
	"refbridge/mapping"
)

func TestRecordIDs(t *testing.T) {
	t.Parallel()
	a := mapping.CaseRecordID("gambella", "TST-00000001")
	if a != mapping.CaseRecordID("gambella", "TST-00000001") {
		t.Fatal("case record id is not deterministic")
	}
	for _, other := range []string{
		mapping.CaseRecordID("gambella", "TST-00000002"),
		mapping.CaseRecordID("kakuma", "TST-00000001"),
		mapping.ServiceUniqueID("gambella", "TST-00000001"),
	} {
		if other == a {
			t.Fatalf("distinct names gave the same id %s", a)
		}
	}
	if got := mapping.OrgReferralID("c0c0c0c0-0000-4000-8000-000000000001", "f0f0f0f0-0000-4000-8000-0a1b2c3d4e5f"); got != "c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f" {
		t.Fatalf("OrgReferralID = %q, want the fixture's id", got)
	}
}

func TestIdentityDifferencesNamesFieldsOnly(t *testing.T) {
	t.Parallel()
	existing := refbridge.Case{NameFirst: "Amina", NameLast: "Fixture", DateOfBirth: "2014-03-15", Sex: "female"}
	incoming := refbridge.Case{NameFirst: "Aminah", NameLast: "Fixture", DateOfBirth: "2014-03-16", TelephoneCurrent: "+000"}
	got := mapping.IdentityDifferences(existing, incoming)
	if len(got) != 2 || got[0].Field != "name_first" || got[1].Field != "date_of_birth" {
		t.Fatalf("differences = %+v, want name_first and date_of_birth", got)
	}
	for _, p := range got {
		for _, v := range []string{"Amina", "Aminah", "2014"} {
			if strings.Contains(p.Detail, v) {
				t.Fatalf("problem %+v quotes a personal value", p)
			}
		}
	}
}
