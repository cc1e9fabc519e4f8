package primerotest

import (
	"net/http"
	"reflect"
	"slices"
	"testing"
)

// referrableCase seeds a CP case owned by cw1 with consent and one service.
func referrableCase(t testing.TB, s *Sim, extra map[string]any) (caseID string) {
	t.Helper()
	data := map[string]any{
		"owned_by": uCW1, "module_id": "primeromodule-cp",
		"consent_for_services": true, "disclosure_other_orgs": true,
		"services_section": []any{map[string]any{"unique_id": svcA, "service_type": "shelter"}},
	}
	for k, v := range extra {
		data[k] = v
	}
	return s.SeedCase(data)
}

func refer(t testing.TB, s *Sim, caseID, asUser string, data map[string]any) response {
	t.Helper()
	return request(t, s, http.MethodPost, "/api/v2/cases/"+caseID+"/referrals", asUser, map[string]any{"data": data})
}

func patchReferral(t testing.TB, s *Sim, caseID, rid, asUser string, data map[string]any) response {
	t.Helper()
	return request(t, s, http.MethodPatch, "/api/v2/cases/"+caseID+"/referrals/"+rid, asUser, map[string]any{"data": data})
}

func TestCreateReferral(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, Options{Now: clock.Now})
	id := referrableCase(t, s, nil)
	before := s.Case(id)["last_updated_at"]
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases/"+id, uUNHCR, nil), http.StatusForbidden)

	r := refer(t, s, id, uCW1, map[string]any{
		"transitioned_to": uUNHCR, "service_record_id": svcA, "service": "shelter", "notes": "",
		"unknown_key": "ignored",
	})
	mustStatus(t, r, http.StatusOK)
	d := r.data(t)
	want := map[string]any{
		"type": "Referral", "record_type": "case", "record_id": id, "status": "in_progress",
		"transitioned_by": uCW1, "transitioned_to": uUNHCR, "transitioned_to_agency": "UNHCR",
		"service": "shelter", "service_record_id": svcA, "notes": "",
		"consent_overridden": false, "remote": false, "consent_individual_transfer": false,
		"record_access_denied": false, "user_can_accept_or_reject": false,
	}
	for k, v := range want {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	if !isLowerUUID(str(d["id"])) || d["created_at"] == nil || d["unknown_key"] != nil {
		t.Errorf("referral %v", d)
	}
	for k, v := range d {
		if v == nil {
			t.Errorf("referral JSON has null %s", k)
		}
	}
	rec := d["record"].(map[string]any)
	if rec["id"] != id || rec["enabled"] != true || rec["last_updated_at"] == before ||
		!reflect.DeepEqual(rec["assigned_user_names"], []any{uUNHCR}) {
		t.Errorf("record %v", rec)
	}

	c := s.Case(id)
	if !reflect.DeepEqual(c["associated_user_names"], []any{uCW1, uUNHCR}) {
		t.Errorf("associated_user_names %v", c["associated_user_names"])
	}
	if svc := services(t, c)[0]; svc["service_status_referred"] != true {
		t.Errorf("service %v", svc)
	}
	if c["last_updated_at"] == before || c["last_updated_by"] != uCW1 {
		t.Errorf("last_updated_at %v by %v", c["last_updated_at"], c["last_updated_by"])
	}

	// The recipient can now read the case and its referrals.
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases/"+id, uUNHCR, nil), http.StatusOK)
	l := request(t, s, http.MethodGet, "/api/v2/cases/"+id+"/referrals", uUNHCR, nil)
	mustStatus(t, l, http.StatusOK)
	if _, ok := l.obj(t)["metadata"]; ok {
		t.Error("referral list has metadata")
	}
	items := l.list(t)
	if len(items) != 1 || items[0]["user_can_accept_or_reject"] != true || items[0]["record"] != nil {
		t.Errorf("referrals %v", items)
	}
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases/"+id+"/referrals", uCW2, nil), http.StatusForbidden)
}

func TestReferralValidation(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	tests := []struct {
		name      string
		caseData  map[string]any
		referral  map[string]any
		want      int
		wantError []map[string]any // detail + message of each envelope entry
	}{
		{"cp with both consents", nil, map[string]any{"transitioned_to": uUNHCR}, 200, nil},
		{"cp without disclosure", map[string]any{"disclosure_other_orgs": false}, map[string]any{"transitioned_to": uUNHCR}, 422,
			[]map[string]any{{"detail": "consent", "message": []any{"transition.errors.consent"}}}},
		{"cp without any consent", map[string]any{"disclosure_other_orgs": nil, "consent_for_services": nil}, map[string]any{"transitioned_to": uUNHCR}, 422,
			[]map[string]any{{"detail": "consent", "message": []any{"transition.errors.consent"}}}},
		{"consent overridden", map[string]any{"consent_for_services": false}, map[string]any{"transitioned_to": uUNHCR, "consent_overridden": true}, 200, nil},
		{"gbv needs services consent only", map[string]any{"module_id": "primeromodule-gbv", "disclosure_other_orgs": false}, map[string]any{"transitioned_to": uUNHCR}, 200, nil},
		{"gbv without services consent", map[string]any{"module_id": "primeromodule-gbv", "consent_for_services": false}, map[string]any{"transitioned_to": uUNHCR}, 422,
			[]map[string]any{{"detail": "consent", "message": []any{"transition.errors.consent"}}}},
		{"unknown recipient", nil, map[string]any{"transitioned_to": "nobody"}, 422,
			[]map[string]any{{"detail": "transitioned_to", "message": []any{"transition.errors.to_user_can_receive"}}}},
		{"disabled recipient", nil, map[string]any{"transitioned_to": uDisabled}, 422,
			[]map[string]any{{"detail": "transitioned_to", "message": []any{"transition.errors.to_user_can_receive"}}}},
		{"no recipient", nil, map[string]any{"notes": "x"}, 422,
			[]map[string]any{{"detail": "transitioned_to", "message": []any{"can't be blank"}}}},
		{"remote needs no recipient", nil, map[string]any{"remote": true, "transitioned_to_remote": "UNHCR"}, 200, nil},
		{"no consent and bad recipient", map[string]any{"consent_for_services": false}, map[string]any{"transitioned_to": "nobody"}, 422,
			[]map[string]any{
				{"detail": "consent", "message": []any{"transition.errors.consent"}},
				{"detail": "transitioned_to", "message": []any{"transition.errors.to_user_can_receive"}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := referrableCase(t, s, tc.caseData)
			before := s.Case(id)
			r := refer(t, s, id, uCW1, tc.referral)
			mustStatus(t, r, tc.want)
			if tc.want == 200 {
				return
			}
			errs := r.obj(t)["errors"].([]any)
			if len(errs) != len(tc.wantError) {
				t.Fatalf("errors %s", r.body)
			}
			for i, w := range tc.wantError {
				e := errs[i].(map[string]any)
				if e["detail"] != w["detail"] || !reflect.DeepEqual(e["message"], w["message"]) || e["status"] != float64(422) {
					t.Errorf("error %d = %v, want %v", i, e, w)
				}
			}
			if !reflect.DeepEqual(before, s.Case(id)) || len(s.Referrals(id)) != 0 {
				t.Error("refused referral changed the case")
			}
		})
	}
	r := request(t, s, http.MethodPost, "/api/v2/cases/"+referrableCase(t, s, nil)+"/referrals", uCW1, map[string]any{})
	mustStatus(t, r, http.StatusUnprocessableEntity)
}

func TestDisabledRecipient(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := referrableCase(t, s, nil)
	s.SetUserDisabled(uUNHCR, true)
	mustStatus(t, refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR}), http.StatusUnprocessableEntity)
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases", uUNHCR, nil), http.StatusUnauthorized)
	s.SetUserDisabled(uUNHCR, false)
	mustStatus(t, refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR}), http.StatusOK)
}

func TestReferralStateMachine(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	tests := []struct {
		name  string
		steps []string // requested statuses, in order
		want  []string // status after each step; every step answers 200
	}{
		{"accept", []string{"accepted"}, []string{"accepted"}},
		{"reject", []string{"rejected"}, []string{"rejected"}},
		{"accept then done", []string{"accepted", "done"}, []string{"accepted", "done"}},
		{"done before accept is ignored", []string{"done"}, []string{"in_progress"}},
		{"same status is ignored", []string{"in_progress", "accepted", "accepted"}, []string{"in_progress", "accepted", "accepted"}},
		{"reject after accept is ignored", []string{"accepted", "rejected"}, []string{"accepted", "accepted"}},
		{"accept after reject is ignored", []string{"rejected", "accepted"}, []string{"rejected", "rejected"}},
		{"accept after done is ignored", []string{"accepted", "done", "accepted"}, []string{"accepted", "done", "done"}},
		{"revoked via PATCH is ignored", []string{"revoked"}, []string{"in_progress"}},
		{"no status is ignored", []string{""}, []string{"in_progress"}},
		{"unknown status is ignored", []string{"approved", "Accepted"}, []string{"in_progress", "in_progress"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := referrableCase(t, s, nil)
			rid := refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR, "service_record_id": svcA}).data(t)["id"].(string)
			for i, st := range tc.steps {
				body := map[string]any{"rejection_note": "n"}
				if st != "" {
					body["status"] = st
				}
				// The bridge, not the recipient, answers: Primero does not check.
				r := patchReferral(t, s, id, rid, uBridge, body)
				mustStatus(t, r, http.StatusOK)
				d := r.data(t)
				if d["status"] != tc.want[i] || d["id"] != rid {
					t.Fatalf("step %d (%s): status %v, want %s", i, st, d["status"], tc.want[i])
				}
				if rec, ok := d["record"].(map[string]any); !ok || rec["id"] != id || rec["last_updated_at"] == nil {
					t.Fatalf("step %d: record %v", i, d["record"])
				}
			}
		})
	}
}

func TestReferralPatchRejects(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := referrableCase(t, s, nil)
	rid := refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR}).data(t)["id"].(string)
	tests := []struct {
		name, caseID, rid, user string
		body                    any
		want                    int
	}{
		{"no data", id, rid, uBridge, map[string]any{"status": "accepted"}, 422},
		{"unknown referral", id, "e1e1e1e1-0000-4000-8000-000000000009", uBridge, map[string]any{"data": map[string]any{"status": "accepted"}}, 404},
		{"out of scope", id, rid, uCW2, map[string]any{"data": map[string]any{"status": "accepted"}}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := request(t, s, http.MethodPatch, "/api/v2/cases/"+tc.caseID+"/referrals/"+tc.rid, tc.user, tc.body)
			mustStatus(t, r, tc.want)
		})
	}
	if got := s.Referrals(id)[0].Status; got != "in_progress" {
		t.Errorf("status %s after refused PATCHes", got)
	}
}

func TestReferralRejectRemovesAccess(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := referrableCase(t, s, nil)
	rid := refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR, "service_record_id": svcA}).data(t)["id"].(string)
	before := s.Case(id)["last_updated_at"]
	r := patchReferral(t, s, id, rid, uUNHCR, map[string]any{"status": "rejected", "rejected_reason": "not_in_area"})
	mustStatus(t, r, http.StatusOK)
	d := r.data(t)
	if d["rejected_reason"] != "not_in_area" || d["responded_at"] == nil || d["record_access_denied"] != true {
		t.Errorf("rejected referral %v", d)
	}
	c := s.Case(id)
	if !reflect.DeepEqual(c["associated_user_names"], []any{uCW1}) || c["last_updated_at"] == before {
		t.Errorf("case after reject: %v %v", c["associated_user_names"], c["last_updated_at"])
	}
	mustStatus(t, request(t, s, http.MethodGet, "/api/v2/cases/"+id, uUNHCR, nil), http.StatusForbidden)
}

func TestReferralAcceptLeavesCaseAlone(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := referrableCase(t, s, nil)
	rid := refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR}).data(t)["id"].(string)
	before := s.Case(id)
	r := patchReferral(t, s, id, rid, uUNHCR, map[string]any{"status": "accepted"})
	mustStatus(t, r, http.StatusOK)
	if !reflect.DeepEqual(before, s.Case(id)) {
		t.Error("accept! wrote the case")
	}
	if got := keys(r.data(t)["record"].(map[string]any)); !slices.Equal(got, []string{"enabled", "id", "last_updated_at"}) {
		t.Errorf("record %v", got)
	}
}

func TestReferralDone(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := referrableCase(t, s, nil)
	rid := refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR, "service_record_id": svcA}).data(t)["id"].(string)
	mustStatus(t, patchReferral(t, s, id, rid, uUNHCR, map[string]any{"status": "accepted"}), http.StatusOK)
	r := patchReferral(t, s, id, rid, uUNHCR, map[string]any{"status": "done", "rejection_note": "delivered"})
	mustStatus(t, r, http.StatusOK)
	if d := r.data(t); d["status"] != "done" || d["rejection_note"] != "delivered" {
		t.Errorf("done referral %v", d)
	}
	svc := services(t, s.Case(id))[0]
	if svc["service_implemented"] != "implemented" || svc["note_on_referral_from_provider"] != "delivered" || svc["service_implemented_day_time"] == nil {
		t.Errorf("service after done %v", svc)
	}
	if c := s.Case(id); slices.Contains(stringList(c["associated_user_names"]), uUNHCR) {
		t.Error("done must remove the recipient's access")
	}
}

func TestReferralRevoke(t *testing.T) {
	t.Parallel()
	s := newSim(t, Options{})
	id := referrableCase(t, s, nil)
	rid := refer(t, s, id, uCW1, map[string]any{"transitioned_to": uUNHCR}).data(t)["id"].(string)
	r := request(t, s, http.MethodDelete, "/api/v2/cases/"+id+"/referrals/"+rid, uCW1, nil)
	mustStatus(t, r, http.StatusOK)
	d := r.data(t)
	if d["status"] != "revoked" || d["record"] == nil {
		t.Errorf("revoked referral %v", d)
	}
	if c := s.Case(id); slices.Contains(stringList(c["associated_user_names"]), uUNHCR) {
		t.Error("revoke must remove the recipient's access")
	}
	if refs := s.Referrals(id); len(refs) != 1 || refs[0].Status != "revoked" {
		t.Errorf("Referrals %v", refs)
	}
}
