package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"refbridge"
	"refbridge/egress"
	"refbridge/profile"
	"refbridge/store"
)

// recordingDTP keeps the bodies the engine hands the DTP client, and
// refuses an unfiltered one as the client does.
type recordingDTP struct {
	mu   sync.Mutex
	sent []string // "kind fields…"
}

func (d *recordingDTP) record(kind string, fields []string, err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent = append(d.sent, kind+" "+strings.Join(fields, " "))
	return err
}

func (d *recordingDTP) SendReferral(_ context.Context, r egress.Message[refbridge.DTPReferral]) error {
	return d.record("referral", r.Fields(), r.Err())
}

func (d *recordingDTP) SendInterventionStatus(_ context.Context, s egress.Message[refbridge.InterventionStatus]) error {
	return d.record("status", s.Fields(), s.Err())
}

// recordingStore accepts every change and keeps it; the steps under test
// use no other store method.
type recordingStore struct {
	Store
	mu      sync.Mutex
	changes []store.Change
}

func (s *recordingStore) Transition(_ context.Context, id string, c store.Change) (refbridge.Exchange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, c)
	return refbridge.Exchange{ID: id, State: c.To}, nil
}

// noPrimero stands in for a Primero the steps under test never call.
type noPrimero struct{ Primero }

// narrowedForUNICEF is the Gambella profile after UNICEF's own ISP
// narrowed what goes to UNHCR about its cases.
func narrowedForUNICEF(t *testing.T) *profile.Profile {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse([]byte(strings.Replace(string(src), "isp:\n", `isp:
  agencies:
    UNICEF:
      primero_to_progres:
        referral: [primero_user, position, email, phone, full_name, request_type, service_implementing_agency, service_type, owned_by_agency_id, id, unhcr_individual_no]
        status: [case_id, primero_user, progres_interventionnumber, status, request_type]
`, 1)))
	if err != nil {
		t.Fatal(err, refbridge.ErrorProblems(err))
	}
	return p
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSendTimeFilter: a message resting in an exchange is filtered again
// when it is sent, for the agency stored with it, under the profile in force
// then — a narrower list adopted after the mapping applies to what has not
// left yet — and the audit names the fields of the body actually sent. A
// payload stored before the agency travelled with it is still read, and
// sent under the general list.
func TestSendTimeFilter(t *testing.T) {
	t.Parallel()
	referral := refbridge.DTPReferral{
		PrimeroUser: "test_caseworker", Position: "Test position", Email: "cw@example.org", Phone: "+000000000001",
		FullName: "Test Worker", RequestType: refbridge.RequestTypeIncomingReferral, ServiceImplementingAgency: "UNHCR",
		OwnedByAgencyID: "UNICEF", UNHCRIndividualNo: "TST-00000001", NameFirst: "Testchild", DateOfBirth: "2014-03-15",
		ID: "c0c0c0c0-0000-4000-8000-000000000001#000000000001",
	}
	decision := refbridge.InterventionStatus{CaseID: new("CASE-1"), PrimeroUser: new("test_caseworker"), InterventionNumber: "TST-24-PRTITV-0000001",
		Status: refbridge.StatusAcknowledged, ClosureReason: "No reason specified.", RequestType: refbridge.RequestTypeDecisionOutgoingReferral}
	const (
		narrowReferral = "email full_name id owned_by_agency_id phone position primero_user request_type service_implementing_agency unhcr_individual_no"
		fullReferral   = "date_of_birth email full_name id name_first owned_by_agency_id phone position primero_user request_type service_implementing_agency unhcr_individual_no"
		narrowStatus   = "case_id primero_user progres_interventionnumber request_type status"
		fullStatus     = "case_id closure_reason primero_user progres_interventionnumber request_type status"
	)
	referralEx := func(payload []byte) refbridge.Exchange {
		return refbridge.Exchange{ID: "ex-1", Flow: refbridge.FlowReferral, Key: referral.ID, State: refbridge.StateMapped,
			PeerRef: "c0c0c0c0-0000-4000-8000-000000000001/0e0e0e0e-0000-4000-8000-000000000001", Payload: payload}
	}
	decisionEx := func(payload []byte) refbridge.Exchange {
		return refbridge.Exchange{ID: "ex-2", Flow: refbridge.FlowServiceDecision, Key: decision.InterventionNumber + "#accepted",
			State: refbridge.StateReceived, Payload: payload}
	}
	tests := []struct {
		name   string
		ex     func(t *testing.T) refbridge.Exchange
		kind   string // what was sent
		fields string // the fields it carried, as sent and as audited
	}{
		{"F2 referral of a UNICEF case", func(t *testing.T) refbridge.Exchange {
			return referralEx(mustJSON(t, outgoing[refbridge.DTPReferral]{Message: referral, Agency: "UNICEF"}))
		}, "referral", narrowReferral},
		{"F2 referral of another agency's case", func(t *testing.T) refbridge.Exchange {
			return referralEx(mustJSON(t, outgoing[refbridge.DTPReferral]{Message: referral, Agency: "UNHCR"}))
		}, "referral", fullReferral},
		{"F2 referral stored bare", func(t *testing.T) refbridge.Exchange { return referralEx(mustJSON(t, referral)) }, "referral", fullReferral},
		{"F1d decision on a UNICEF case", func(t *testing.T) refbridge.Exchange {
			return decisionEx(mustJSON(t, outgoing[refbridge.InterventionStatus]{Message: decision, Agency: "UNICEF"}))
		}, "status", narrowStatus},
		{"F1d decision stored bare", func(t *testing.T) refbridge.Exchange { return decisionEx(mustJSON(t, decision)) }, "status", fullStatus},
	}
	p := narrowedForUNICEF(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, d := &recordingStore{}, &recordingDTP{}
			e, err := New(Config{Profile: p, Store: st, Primero: noPrimero{}, DTP: d})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.step(t.Context(), tt.ex(t)); err != nil {
				t.Fatalf("step: %v", err)
			}
			if want := []string{tt.kind + " " + tt.fields}; !slices.Equal(d.sent, want) {
				t.Fatalf("sent %q, want %q", d.sent, want)
			}
			if len(st.changes) != 1 || strings.Join(st.changes[0].Fields, " ") != tt.fields {
				t.Errorf("recorded %+v, want the fields sent audited", st.changes)
			}
		})
	}
}
