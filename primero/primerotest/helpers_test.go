package primerotest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"refbridge"
)

func TestCaseWorkerHelpers(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{Seed: 5})
	id := createCase(t, s, uCW1, map[string]any{"sex": "female"})

	uid, err := s.AddService(id, uCW1, map[string]any{"service_type": "shelter", "service_implementing_agency": "UNHCR"})
	if err != nil || !isLowerUUID(uid) {
		t.Fatalf("AddService = %q, %v", uid, err)
	}
	if svcs := services(t, s.Case(id)); len(svcs) != 1 || svcs[0]["unique_id"] != uid {
		t.Fatalf("services %v", svcs)
	}

	_, err = s.ReferService(id, uid, uCW1, uUNHCR, false)
	if refbridge.ErrorCodeOf(err) != refbridge.EInvalid {
		t.Fatalf("refer without consent: %v", err)
	}
	if p := refbridge.ErrorProblems(err); len(p) != 1 || p[0].Field != "consent" || p[0].Rule != "transition.errors.consent" {
		t.Errorf("problems %+v", p)
	}
	if err := s.SetConsent(id, uCW1, true, true); err != nil {
		t.Fatal(err)
	}
	rid, err := s.ReferService(id, uid, uCW1, uUNHCR, false)
	if err != nil {
		t.Fatal(err)
	}
	refs := s.Referrals(id)
	if len(refs) != 1 || refs[0].ID != rid || refs[0].Status != refbridge.ReferralInProgress ||
		refs[0].Service != "shelter" || refs[0].ServiceRecordID != uid || refs[0].TransitionedTo != uUNHCR {
		t.Errorf("Referrals %+v", refs)
	}
	if err := s.UpdateReferral(id, rid, uUNHCR, map[string]any{"status": "accepted"}); err != nil {
		t.Fatal(err)
	}
	if st := s.Referrals(id)[0].Status; st != refbridge.ReferralAccepted {
		t.Errorf("status %s", st)
	}

	if err := s.DecideService(id, uid, uCW1, "rejected", "no_capacity"); err != nil {
		t.Fatal(err)
	}
	svc := services(t, s.Case(id))[0]
	if svc["unhcr_referral_status"] != "rejected" || svc["unhcr_referral_rejection_reason"] != "no_capacity" {
		t.Errorf("service %v", svc)
	}

	tests := []struct {
		name string
		err  error
		want refbridge.ErrorCode
	}{
		{"bad decision", s.DecideService(id, uid, uCW1, "maybe", ""), refbridge.EInvalid},
		{"unknown service", s.DecideService(id, svcC, uCW1, "accepted", ""), refbridge.ENotFound},
		{"unknown case", s.SetConsent("0b6d7c4e-0000-4000-8000-000000000009", uCW1, true, true), refbridge.ENotFound},
		{"out of scope", s.SetConsent(id, uCW2, true, true), refbridge.EForbidden},
		{"unknown user", s.SetConsent(id, "nobody", true, true), refbridge.EUnauthorized},
		{"invalid patch", s.PatchCase(id, uCW1, map[string]any{"age": "ten"}), refbridge.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := refbridge.ErrorCodeOf(tc.err); got != tc.want {
				t.Errorf("code %s (%v), want %s", got, tc.err, tc.want)
			}
		})
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := New(Options{Seed: 9}), New(Options{Seed: 9})
	ia, ib := a.SeedCases(3, nil), b.SeedCases(3, nil)
	if fmt.Sprint(ia) != fmt.Sprint(ib) {
		t.Errorf("ids differ: %v %v", ia, ib)
	}
	if a.Case(ia[0])["unique_identifier"] != b.Case(ib[0])["unique_identifier"] {
		t.Error("unique_identifier differs")
	}
}

func TestHandlerWithoutServer(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	s.AddUser(UserSpec{User: userNamed(uBridge), Password: password(uBridge)})
	req, _ := http.NewRequest(http.MethodGet, "/api/v2/cases", nil)
	req.SetBasicAuth(uBridge, password(uBridge))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("status %d", rec.Code)
	}
	s.Close()
}
