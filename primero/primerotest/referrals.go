package primerotest

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"

	"refbridge"
)

// Referrals (contract §3; models/referral.rb).

type referral struct {
	seq                                                  int64
	id, recordID, status                                 string
	transitionedBy, transitionedTo, transitionedToAgency string
	transitionedToRemote, typeOfExport                   string
	service, serviceRecordID, authorizedRole             string
	rejectedReason, rejectionNote, serviceImplemented    string
	notes                                                *string
	allowCaseCreation                                    *bool
	remote, consentOverridden                            bool
	createdAt, respondedAt                               time.Time
}

// toJSON renders the non-null columns plus the two viewer-dependent flags.
func (ref *referral) toJSON(viewer string, accessDenied bool) map[string]any {
	m := map[string]any{
		"id":                          ref.id,
		"type":                        "Referral",
		"record_id":                   ref.recordID,
		"record_type":                 "case",
		"status":                      ref.status,
		"transitioned_by":             ref.transitionedBy,
		"remote":                      ref.remote,
		"consent_overridden":          ref.consentOverridden,
		"consent_individual_transfer": false,
		"created_at":                  formatTime(ref.createdAt),
		"record_access_denied":        accessDenied,
		"user_can_accept_or_reject":   viewer == ref.transitionedTo && ref.status == refbridge.ReferralInProgress,
	}
	for k, v := range map[string]string{
		"transitioned_to":           ref.transitionedTo,
		"transitioned_to_agency":    ref.transitionedToAgency,
		"transitioned_to_remote":    ref.transitionedToRemote,
		"type_of_export":            ref.typeOfExport,
		"service":                   ref.service,
		"service_record_id":         ref.serviceRecordID,
		"authorized_role_unique_id": ref.authorizedRole,
		"rejected_reason":           ref.rejectedReason,
		"rejection_note":            ref.rejectionNote,
		"service_implemented":       ref.serviceImplemented,
	} {
		if v != "" {
			m[k] = v
		}
	}
	if ref.notes != nil {
		m["notes"] = *ref.notes
	}
	if ref.allowCaseCreation != nil {
		m["allow_case_creation"] = *ref.allowCaseCreation
	}
	if !ref.respondedAt.IsZero() {
		m["responded_at"] = formatTime(ref.respondedAt)
	}
	return m
}

func (ref *referral) domain() refbridge.Referral {
	remote, consent, noIndividual := ref.remote, ref.consentOverridden, false
	return refbridge.Referral{
		ID: ref.id, Type: "Referral", RecordID: ref.recordID, RecordType: "case", Status: ref.status,
		TransitionedBy: ref.transitionedBy, TransitionedTo: ref.transitionedTo,
		TransitionedToAgency: ref.transitionedToAgency, TransitionedToRemote: ref.transitionedToRemote,
		Remote: &remote, TypeOfExport: ref.typeOfExport, Service: ref.service, ServiceRecordID: ref.serviceRecordID,
		Notes: ref.notes, ConsentOverridden: &consent, ConsentIndividualTransfer: &noIndividual,
		AuthorizedRoleUniqueID: ref.authorizedRole, AllowCaseCreation: ref.allowCaseCreation,
		RejectedReason: ref.rejectedReason, RejectionNote: ref.rejectionNote,
		RespondedAt: ref.respondedAt, CreatedAt: ref.createdAt,
	}
}

func toBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

func toStr(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// consentGiven is Referral#consent_given?.
func consentGiven(d map[string]any) bool {
	forServices := d["consent_for_services"] == true
	if str(d["module_id"]) == "primeromodule-gbv" {
		return forServices
	}
	return forServices && d["disclosure_other_orgs"] == true
}

// findService returns the stored services_section item with unique_id uid.
func findService(rec *record, uid string) map[string]any {
	if uid == "" {
		return nil
	}
	list, _ := rec.data["services_section"].([]any)
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && str(m["unique_id"]) == uid {
			return m
		}
	}
	return nil
}

func (s *Sim) findReferral(rec *record, rid string) (*referral, *apiError) {
	for _, ref := range s.referrals[rec.id] {
		if ref.id == rid {
			return ref, nil
		}
	}
	return nil, errNotFound("Couldn't find Transition with 'id'=" + rid)
}

// referralResponse is {"data": referral + record:{id,enabled,<changed>,last_updated_at}}.
// Callers hold s.mu.
func (s *Sim) referralResponse(u *user, rec *record, ref *referral, changed map[string]bool) map[string]any {
	m := ref.toJSON(u.name(), !s.canSee(u, rec))
	m["record"] = s.view(rec, u.canRead, changed)
	return map[string]any{"data": m}
}

// handleListReferrals is GET /api/v2/cases/{id}/referrals: newest first, no metadata.
func (s *Sim) handleListReferrals(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	list := []map[string]any{}
	if aerr == nil {
		refs := slices.Clone(s.referrals[rec.id])
		slices.SortFunc(refs, func(a, b *referral) int {
			if c := b.createdAt.Compare(a.createdAt); c != 0 {
				return c
			}
			return cmp.Compare(b.seq, a.seq)
		})
		for _, ref := range refs {
			list = append(list, ref.toJSON(u.name(), false))
		}
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list})
}

// handleCreateReferral is POST /api/v2/cases/{id}/referrals.
func (s *Sim) handleCreateReferral(w http.ResponseWriter, r *http.Request, u *user) {
	body, aerr := readBody(r)
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	s.mu.Lock()
	var out map[string]any
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	if aerr == nil {
		var data map[string]any
		if data, aerr = dataParam(body); aerr == nil {
			var ref *referral
			var changed map[string]bool
			if ref, changed, aerr = s.createReferral(u, rec, data); aerr == nil {
				out = s.referralResponse(u, rec, ref, changed)
			}
		}
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// createReferral validates and performs a referral of rec by u. Callers hold s.mu.
func (s *Sim) createReferral(u *user, rec *record, data map[string]any) (*referral, map[string]bool, *apiError) {
	ref := &referral{
		recordID:             rec.id,
		status:               refbridge.ReferralInProgress,
		transitionedBy:       u.name(),
		transitionedTo:       toStr(data["transitioned_to"]),
		transitionedToAgency: toStr(data["transitioned_to_agency"]),
		transitionedToRemote: toStr(data["transitioned_to_remote"]),
		typeOfExport:         toStr(data["type_of_export"]),
		service:              toStr(data["service"]),
		serviceRecordID:      toStr(data["service_record_id"]),
		authorizedRole:       toStr(data["authorized_role_unique_id"]),
		remote:               toBool(data["remote"]),
		consentOverridden:    toBool(data["consent_overridden"]),
	}
	if v, ok := data["notes"]; ok && v != nil {
		n := toStr(v)
		ref.notes = &n
	}
	if v, ok := data["allow_case_creation"]; ok && v != nil {
		b := toBool(v)
		ref.allowCaseCreation = &b
	}

	// Validations, in the model's order; all failures are reported.
	var errs []*apiError
	to := s.users[ref.transitionedTo]
	if !ref.remote && ref.transitionedTo == "" {
		errs = append(errs, errModel("transitioned_to", "can't be blank"))
	}
	if !ref.consentOverridden && !consentGiven(rec.data) {
		errs = append(errs, errModel("consent", "transition.errors.consent"))
	}
	if !ref.remote && ref.transitionedTo != "" && (to == nil || to.disabled()) {
		errs = append(errs, errModel("transitioned_to", "transition.errors.to_user_can_receive"))
	}
	if len(errs) > 0 {
		errs[0].more = errs[1:]
		return nil, nil, errs[0]
	}

	t := s.tick()
	ref.id = s.newUUID()
	ref.createdAt = t
	if ref.transitionedToAgency == "" && to != nil {
		ref.transitionedToAgency = to.spec.AgencyUniqueID
	}
	changed := map[string]bool{}
	if svc := findService(rec, ref.serviceRecordID); svc != nil && svc["service_status_referred"] != true {
		svc["service_status_referred"] = true
		changed["services_section"] = true
	}
	if !ref.remote && to != nil {
		assigned := stringList(rec.data["assigned_user_names"])
		if !slices.Contains(assigned, to.name()) {
			rec.data["assigned_user_names"] = anyList(append(assigned, to.name()))
			changed["assigned_user_names"] = true
		}
	}
	s.seq++
	ref.seq = s.seq
	s.referrals[rec.id] = append(s.referrals[rec.id], ref)
	s.afterRecordChange(rec, changed, t, u.name())
	s.queueWebhooks("case.update", rec)
	return ref, changed, nil
}

// removeAssigned takes the recipient's access away (remove_assigned_user).
func removeAssigned(rec *record, name string, changed map[string]bool) {
	assigned := stringList(rec.data["assigned_user_names"])
	if i := slices.Index(assigned, name); i >= 0 {
		rec.data["assigned_user_names"] = anyList(slices.Delete(assigned, i, i+1))
		changed["assigned_user_names"] = true
	}
}

// handlePatchReferral is PATCH /api/v2/cases/{id}/referrals/{rid}.
func (s *Sim) handlePatchReferral(w http.ResponseWriter, r *http.Request, u *user) {
	body, aerr := readBody(r)
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	s.mu.Lock()
	var out map[string]any
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	var ref *referral
	if aerr == nil {
		ref, aerr = s.findReferral(rec, r.PathValue("rid"))
	}
	if aerr == nil {
		var data map[string]any
		if data, aerr = dataParam(body); aerr == nil {
			out = s.referralResponse(u, rec, ref, s.processReferral(u, rec, ref, data))
		}
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// processReferral is Referral#process!: accepted and rejected only from
// in_progress, done only from accepted. Any other request — including the
// current status — changes nothing and is still a success. The caller is not
// checked against the recipient. Callers hold s.mu.
func (s *Sim) processReferral(u *user, rec *record, ref *referral, data map[string]any) map[string]bool {
	changed := map[string]bool{}
	// Strong params (status, rejected_reason, rejection_note) and no schema:
	// an unknown status is just another request process! ignores.
	requested := toStr(data["status"])
	if requested == ref.status {
		return changed
	}
	switch requested {
	case refbridge.ReferralAccepted:
		if ref.status != refbridge.ReferralInProgress {
			return changed
		}
		// accept! saves the transition only; the case is not written.
		ref.status = refbridge.ReferralAccepted
		ref.respondedAt = s.now().UTC().Truncate(time.Millisecond)
	case refbridge.ReferralRejected:
		if ref.status != refbridge.ReferralInProgress {
			return changed
		}
		t := s.tick()
		ref.status = refbridge.ReferralRejected
		ref.rejectedReason = toStr(data["rejected_reason"])
		ref.respondedAt = t
		removeAssigned(rec, ref.transitionedTo, changed)
		s.afterRecordChange(rec, changed, t, u.name())
		s.queueWebhooks("case.update", rec)
	case refbridge.ReferralDone:
		if ref.status != refbridge.ReferralAccepted {
			return changed
		}
		t := s.tick()
		ref.status = refbridge.ReferralDone
		ref.serviceImplemented = "implemented"
		svc := findService(rec, ref.serviceRecordID)
		if svc != nil {
			if ref.serviceImplemented == "implemented" && str(svc["service_implemented_day_time"]) == "" {
				svc["service_implemented_day_time"] = formatTime(t)
			}
			svc["service_implemented"] = ref.serviceImplemented
			changed["services_section"] = true
		}
		if note := toStr(data["rejection_note"]); note != "" {
			ref.rejectionNote = note
			if svc != nil {
				svc["note_on_referral_from_provider"] = note
			}
		}
		removeAssigned(rec, ref.transitionedTo, changed)
		s.afterRecordChange(rec, changed, t, u.name())
		s.queueWebhooks("case.update", rec)
	}
	return changed
}

// handleDeleteReferral is DELETE /api/v2/cases/{id}/referrals/{rid}: revoke!.
func (s *Sim) handleDeleteReferral(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	var out map[string]any
	rec, aerr := s.findVisible(u, r.PathValue("id"))
	var ref *referral
	if aerr == nil {
		ref, aerr = s.findReferral(rec, r.PathValue("rid"))
	}
	if aerr == nil {
		changed := map[string]bool{}
		t := s.tick()
		ref.status = refbridge.ReferralRevoked
		removeAssigned(rec, ref.transitionedTo, changed)
		s.afterRecordChange(rec, changed, t, u.name())
		s.queueWebhooks("case.update", rec)
		out = s.referralResponse(u, rec, ref, changed)
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
