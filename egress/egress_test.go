package egress_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"refbridge"
	"refbridge/egress"
	"refbridge/profile"
)

// gambella loads the Gambella profile; with agencyISP it is given narrower
// lists for UNICEF, as an agency whose own ISP with UNHCR shares less.
func gambella(t *testing.T, agencyISP bool) *profile.Profile {
	t.Helper()
	if !agencyISP {
		p, err := profile.Load("gambella")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "isp:\n"
	if strings.Count(string(src), anchor) != 1 {
		t.Fatalf("the Gambella profile has no single %q", anchor)
	}
	p, err := profile.Parse([]byte(strings.Replace(string(src), anchor, anchor+`  agencies:
    UNICEF:
      progres_to_primero:
        case: [status, unhcr_individual_no, services_section.unique_id, services_section.progres_interventionnumber]
      primero_to_progres:
        referral: [primero_user, position, email, phone, full_name, request_type, service_implementing_agency, service_type, owned_by_agency_id, id, unhcr_individual_no]
`, 1)))
	if err != nil {
		t.Fatal(err, refbridge.ErrorProblems(err))
	}
	return p
}

// sealed is what a test reads of a Message of any body type.
type sealed struct {
	fields []string
	body   []byte
	err    error
}

// seal filters v and reads the result back.
func seal[T egress.Body](t *testing.T, p *profile.Profile, agency string, v T) sealed {
	t.Helper()
	m := egress.Filter(p, agency, v)
	body, err := json.Marshal(m)
	if m.Err() == nil && err != nil {
		t.Fatalf("a sealed %T does not encode: %v", v, err)
	}
	return sealed{fields: m.Fields(), body: body, err: m.Err()}
}

// keys returns the keys of a JSON object that carry a value (not null),
// sorted, and the keys of its services_section items as
// "services_section.<key>".
func keys(t *testing.T, body []byte) (top, services []string) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", body, err)
	}
	for k, v := range obj {
		if string(v) == "null" {
			continue
		}
		top = append(top, k)
		if k != "services_section" {
			continue
		}
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			for sk := range it {
				services = append(services, "services_section."+sk)
			}
		}
	}
	slices.Sort(top)
	slices.Sort(services)
	return top, slices.Compact(services)
}

func fullCase() refbridge.Case {
	return refbridge.Case{
		CaseID: "c0c0c0c0-0000-4000-8000-000000000001", Status: "open", NameFirst: "Testchild", Sex: "female",
		UNHCRIndividualNo: "TST-00000001", Age: new(9), RiskLevel: "high", ConsentForServices: new(true),
		MarkSynced: new(true), MarkSyncedStatus: "sent",
		Services: []refbridge.Service{{
			UniqueID: "f0f0f0f0-0000-4000-8000-000000000001", ServiceType: "shelter", InterventionNumber: "TST-24-PRTITV-0000001",
			ServiceProvider: "Test provider", RequestEmail: "requester@example.org",
		}},
	}
}

func fullReferral() refbridge.DTPReferral {
	return refbridge.DTPReferral{
		PrimeroUser: "test_caseworker", Position: "Test position", Email: "cw@example.org", Phone: "+000000000001",
		FullName: "Test Worker", RequestType: refbridge.RequestTypeIncomingReferral, ServiceImplementingAgency: "UNHCR",
		ServiceType: "shelter", OwnedByAgencyID: "UNICEF", UNHCRIndividualNo: "TST-00000001",
		NameFirst: "Testchild", NameLast: "Fixture", DateOfBirth: "2014-03-15", Sex: "female", Language: new("English"),
		ID: "c0c0c0c0-0000-4000-8000-000000000001#000000000001",
	}
}

// TestFilterDropsFieldsOutsideTheAllowList: a field the allow-list does not
// name is not in the body and not in Fields; the fields it names are.
func TestFilterDropsFieldsOutsideTheAllowList(t *testing.T) {
	t.Parallel()
	p := gambella(t, false)
	tests := []struct {
		name         string
		seal         func(t *testing.T) sealed
		want         []string // Fields
		wantServices []string // services_section item keys in the body
	}{
		{
			name: "case",
			seal: func(t *testing.T) sealed { return seal(t, p, "", fullCase()) },
			// risk_level, consent_for_services and mark_synced* are not in
			// Gambella's case list; services_section.service_provider neither.
			want: []string{"age", "case_id", "name_first", "services_section", "sex", "status", "unhcr_individual_no"},
			wantServices: []string{"services_section.progres_interventionnumber", "services_section.service_request_email",
				"services_section.service_type", "services_section.unique_id"},
		},
		{
			name: "referral decision",
			seal: func(t *testing.T) sealed {
				return seal(t, p, "", refbridge.Referral{Status: refbridge.ReferralRejected, RejectedReason: "Not applicable",
					RejectionNote: "Synthetic note", Notes: new("Synthetic note"), TransitionedTo: "unhcr_cw"})
			},
			want: []string{"rejected_reason", "status"},
		},
		{
			name: "intervention status",
			seal: func(t *testing.T) sealed {
				return seal(t, p, "", refbridge.InterventionStatus{InterventionNumber: "TST-24-PRTITV-0000001",
					Status: refbridge.StatusDeliveryFail, ClosureReason: "Missing fields", RequestType: refbridge.RequestTypeFeedback})
			},
			// case_id and primero_user go as null: the wire format names them,
			// nothing is shared.
			want: []string{"closure_reason", "progres_interventionnumber", "request_type", "status"},
		},
		{
			name: "sync status",
			seal: func(t *testing.T) sealed {
				return seal(t, p, "UNICEF", refbridge.SyncStatus{Synced: true, URL: "https://dtp.example.org/r/1", Status: "sent"})
			},
			want: []string{"mark_synced", "mark_synced_status", "mark_synced_url"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.seal(t)
			if got.err != nil {
				t.Fatalf("not sealed: %v", got.err)
			}
			if !slices.Equal(got.fields, tt.want) {
				t.Errorf("Fields() = %v, want %v", got.fields, tt.want)
			}
			top, services := keys(t, got.body)
			if !slices.Equal(top, tt.want) || !slices.Equal(services, tt.wantServices) {
				t.Errorf("body %s carries %v and items %v, want %v and %v", got.body, top, services, tt.want, tt.wantServices)
			}
			for _, value := range []string{"high", "Test provider", "Synthetic note", "unhcr_cw"} {
				if strings.Contains(string(got.body), value) {
					t.Errorf("body %s still carries %q", got.body, value)
				}
			}
		})
	}
}

// TestPerAgencyAllowListsDiffer: the same value filtered for an agency with
// its own, narrower ISP keeps less than for the general list; an agency
// without one gets the general list.
func TestPerAgencyAllowListsDiffer(t *testing.T) {
	t.Parallel()
	p := gambella(t, true)
	tests := []struct {
		name   string
		seal   func(t *testing.T, agency string) sealed
		agency string
		want   []string
	}{
		{"case, general list", func(t *testing.T, a string) sealed { return seal(t, p, a, fullCase()) }, "",
			[]string{"age", "case_id", "name_first", "services_section", "sex", "status", "unhcr_individual_no"}},
		{"case, agency without its own list", func(t *testing.T, a string) sealed { return seal(t, p, a, fullCase()) }, "UNHCR",
			[]string{"age", "case_id", "name_first", "services_section", "sex", "status", "unhcr_individual_no"}},
		{"case, UNICEF", func(t *testing.T, a string) sealed { return seal(t, p, a, fullCase()) }, "UNICEF",
			[]string{"services_section", "status", "unhcr_individual_no"}},
		{"DTP referral, general list", func(t *testing.T, a string) sealed { return seal(t, p, a, fullReferral()) }, "",
			[]string{"date_of_birth", "email", "full_name", "id", "language", "name_first", "name_last", "owned_by_agency_id", "phone",
				"position", "primero_user", "request_type", "service_implementing_agency", "service_type", "sex", "unhcr_individual_no"}},
		{"DTP referral, UNICEF", func(t *testing.T, a string) sealed { return seal(t, p, a, fullReferral()) }, "UNICEF",
			[]string{"email", "full_name", "id", "owned_by_agency_id", "phone", "position", "primero_user", "request_type",
				"service_implementing_agency", "service_type", "unhcr_individual_no"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.seal(t, tt.agency)
			if got.err != nil {
				t.Fatalf("not sealed: %v", got.err)
			}
			if !slices.Equal(got.fields, tt.want) {
				t.Errorf("Fields() = %v, want %v", got.fields, tt.want)
			}
			if top, _ := keys(t, got.body); !slices.Equal(top, tt.want) {
				t.Errorf("body %s carries %v, want %v", got.body, top, tt.want)
			}
		})
	}
	unicef := egress.Filter(p, "UNICEF", fullCase()).Value()
	if len(unicef.Services) != 1 || unicef.Services[0].ServiceType != "" || unicef.Services[0].UniqueID == "" {
		t.Errorf("UNICEF's service items keep %+v, want the unique_id and intervention number only", unicef.Services)
	}
}

// TestFieldsNameTheBodyKeys: for every body type, Fields names exactly the
// keys of the encoded body that carry a value, sorted.
func TestFieldsNameTheBodyKeys(t *testing.T) {
	t.Parallel()
	p := gambella(t, false)
	tests := []struct {
		name string
		seal func(t *testing.T) sealed
	}{
		{"case", func(t *testing.T) sealed { return seal(t, p, "", fullCase()) }},
		{"empty case", func(t *testing.T) sealed { return seal(t, p, "", refbridge.Case{}) }},
		{"referral decision", func(t *testing.T) sealed {
			return seal(t, p, "", refbridge.Referral{Status: refbridge.ReferralAccepted})
		}},
		{"DTP referral", func(t *testing.T) sealed { return seal(t, p, "", fullReferral()) }},
		{"DTP referral with blanks", func(t *testing.T) sealed {
			return seal(t, p, "", refbridge.DTPReferral{ID: "x", RequestType: refbridge.RequestTypeIncomingReferral})
		}},
		{"decision", func(t *testing.T) sealed {
			return seal(t, p, "", refbridge.InterventionStatus{CaseID: new("c"), PrimeroUser: new("u"), InterventionNumber: "N", Status: "s"})
		}},
		{"sync status", func(t *testing.T) sealed { return seal(t, p, "", refbridge.SyncStatus{Status: "failed"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.seal(t)
			if got.err != nil {
				t.Fatalf("not sealed: %v", got.err)
			}
			top, _ := keys(t, got.body)
			if !slices.Equal(got.fields, top) || (top == nil) != (len(got.fields) == 0) {
				t.Errorf("Fields() = %v, body %s carries %v", got.fields, got.body, top)
			}
		})
	}
}

// TestZeroMessageIsRefused: a Message that did not come from Filter is
// invalid, does not encode, and prints no value.
func TestZeroMessageIsRefused(t *testing.T) {
	t.Parallel()
	var m egress.Message[refbridge.Case]
	if err := m.Err(); refbridge.ErrorCodeOf(err) != refbridge.EInvalid || !strings.Contains(err.Error(), "egress.Filter") {
		t.Errorf("Err() = %v, want invalid naming egress.Filter", err)
	}
	if b, err := json.Marshal(struct {
		Data egress.Message[refbridge.Case] `json:"data"`
	}{m}); err == nil {
		t.Errorf("the zero Message encodes as %s", b)
	}
	if f := m.Fields(); len(f) != 0 {
		t.Errorf("Fields() = %v", f)
	}
	// JSON cannot forge one either: the decoded Message is still the zero one.
	var decoded egress.Message[refbridge.Case]
	_ = json.Unmarshal([]byte(`{"value":{"name_first":"Testchild"},"sealed":true}`), &decoded)
	if decoded.Err() == nil {
		t.Error("a Message decoded from JSON passes as filtered")
	}
	if err := egress.Filter[refbridge.Case](nil, "", fullCase()).Err(); refbridge.ErrorCodeOf(err) != refbridge.EInternal {
		t.Errorf("Filter without a profile: Err() = %v, want internal", err)
	}
}

// TestSealedMessageCannotChange: Filter leaves the caller's value as it was,
// and nothing read from a Message changes what it sends or prints.
func TestSealedMessageCannotChange(t *testing.T) {
	t.Parallel()
	p := gambella(t, false)
	in := fullCase()
	m := egress.Filter(p, "", in)
	if in.Services[0].ServiceProvider != "Test provider" || in.RiskLevel != "high" {
		t.Errorf("Filter changed the caller's value: %+v", in)
	}
	before, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	in.Services[0].ServiceType = "changed after"
	v := m.Value()
	v.NameFirst = "Changed"
	v.Services[0].RequestEmail = "changed@example.org"
	*v.Age = 1
	m.Fields()[0] = "changed"
	raw, _ := m.MarshalJSON()
	raw[0] = 'X'
	after, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) || m.Fields()[0] != "age" {
		t.Errorf("the message changed: %s, then %s; fields %v", before, after, m.Fields())
	}
	for _, s := range []string{m.String(), fmt.Sprint(m), fmt.Sprintf("%+v", m)} {
		if strings.Contains(s, "Testchild") || !strings.Contains(s, "name_first") {
			t.Errorf("printed as %q, want field names and no values", s)
		}
	}
}
