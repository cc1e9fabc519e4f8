package primerotest

import (
	"slices"
	"time"

	"refbridge"
)

// Helpers for tests and the demo: direct seeding and inspection, and
// case-worker actions that go through the same logic as the API (scope,
// writable fields, validation, side effects, webhooks), so a test can play
// the Primero user on the other side of refbridge.

// SeedCase inserts a case directly, without permission checks or
// validation, and returns its record id. data may carry "id", created_at,
// last_updated_at and any server field; missing ones are filled as on
// create (from the users named in created_by/owned_by when they exist).
// It panics on a duplicate id, which is a bug in the test.
func (s *Sim) SeedCase(data map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seed(data)
}

// SeedCases inserts n cases built by gen(i) under one lock; it is meant for
// 10,000-case benchmarks. gen may return nil for an empty case.
func (s *Sim) SeedCases(n int, gen func(i int) map[string]any) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, n)
	for i := range n {
		var data map[string]any
		if gen != nil {
			data = gen(i)
		}
		ids[i] = s.seed(data)
	}
	return ids
}

// seed inserts one case. Callers hold s.mu.
func (s *Sim) seed(data map[string]any) string {
	d, _ := normalize(data).(map[string]any)
	if d == nil {
		d = map[string]any{}
	}
	id := str(d["id"])
	delete(d, "id")
	delete(d, "enabled")
	if id == "" {
		id = s.newUUID()
	}
	if s.cases[id] != nil {
		panic("primerotest: SeedCase: duplicate case id " + id)
	}
	for k, v := range d {
		if isObjectList(v) {
			d[k] = mergeValue(nil, v, s.newUUID)
		}
	}
	t := s.tick()
	creator := s.users[str(d["created_by"])]
	if creator == nil {
		creator = s.users[str(d["owned_by"])]
	}
	s.fillServerFields(d, creator, t)
	rec := &record{id: id, data: d}
	s.insert(rec, t, "")
	return id
}

// Case returns a deep copy of the stored case (every field, plus id and
// enabled), or nil when there is none.
func (s *Sim) Case(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.cases[id]
	if rec == nil {
		return nil
	}
	m := copyMap(rec.data)
	m["id"] = rec.id
	m["enabled"] = rec.enabled()
	return m
}

// CaseIDs returns every record id in insertion order.
func (s *Sim) CaseIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.all))
	for i, rec := range s.all {
		ids[i] = rec.id
	}
	return ids
}

// actor returns the user a helper acts as. Callers hold s.mu.
func (s *Sim) actor(name string) (*user, error) {
	u := s.users[name]
	if u == nil || u.disabled() {
		return nil, refbridge.Errorf(refbridge.EUnauthorized, "primero-sim: no enabled user %q", name)
	}
	return u, nil
}

// actOn finds the case a helper works on, as the API would for that user.
// Callers hold s.mu.
func (s *Sim) actOn(caseID, asUser string) (*user, *record, error) {
	u, err := s.actor(asUser)
	if err != nil {
		return nil, nil, err
	}
	rec, aerr := s.findVisible(u, caseID)
	if aerr != nil {
		return nil, nil, asDomainError(aerr)
	}
	return u, rec, nil
}

// PatchCase applies a PATCH body's data as asUser, exactly like
// PATCH /api/v2/cases/{id}.
func (s *Sim) PatchCase(caseID, asUser string, data map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, rec, err := s.actOn(caseID, asUser)
	if err != nil {
		return err
	}
	d, _ := normalize(data).(map[string]any)
	if len(d) == 0 {
		return asDomainError(errParamMissing())
	}
	_, aerr := s.patchCase(u, rec, d)
	return asDomainError(aerr)
}

// AddService adds (or, when svc carries a known unique_id, updates) a
// services_section item as asUser and returns its unique_id.
func (s *Sim) AddService(caseID, asUser string, svc map[string]any) (uniqueID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, rec, err := s.actOn(caseID, asUser)
	if err != nil {
		return "", err
	}
	item, _ := normalize(svc).(map[string]any)
	if item == nil {
		item = map[string]any{}
	}
	uid := str(item["unique_id"])
	if uid == "" {
		uid = s.newUUID()
		item["unique_id"] = uid
	}
	if _, aerr := s.patchCase(u, rec, map[string]any{"services_section": []any{item}}); aerr != nil {
		return "", asDomainError(aerr)
	}
	return uid, nil
}

// ReferService refers the service to toUser as asUser, as a case worker does
// in the UI: POST .../referrals with service_record_id and the service type.
func (s *Sim) ReferService(caseID, serviceUniqueID, asUser, toUser string, consentOverridden bool) (referralID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, rec, err := s.actOn(caseID, asUser)
	if err != nil {
		return "", err
	}
	svc := findService(rec, serviceUniqueID)
	if svc == nil {
		return "", refbridge.Errorf(refbridge.ENotFound, "primero-sim: case %s has no service %s", caseID, serviceUniqueID)
	}
	ref, _, aerr := s.createReferral(u, rec, map[string]any{
		"transitioned_to":    toUser,
		"service_record_id":  serviceUniqueID,
		"service":            svc["service_type"],
		"consent_overridden": consentOverridden,
	})
	if aerr != nil {
		return "", asDomainError(aerr)
	}
	return ref.id, nil
}

// DecideService records a case worker's decision on a service requested by
// UNHCR (flow F1d): unhcr_referral_status accepted|rejected, plus
// unhcr_referral_rejection_reason when rejected.
func (s *Sim) DecideService(caseID, serviceUniqueID, asUser, status, reason string) error {
	if status != "accepted" && status != "rejected" {
		return refbridge.Errorf(refbridge.EInvalid, "primero-sim: decision must be accepted or rejected")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, rec, err := s.actOn(caseID, asUser)
	if err != nil {
		return err
	}
	if findService(rec, serviceUniqueID) == nil {
		return refbridge.Errorf(refbridge.ENotFound, "primero-sim: case %s has no service %s", caseID, serviceUniqueID)
	}
	item := map[string]any{"unique_id": serviceUniqueID, "unhcr_referral_status": status}
	if status == "rejected" {
		item["unhcr_referral_rejection_reason"] = reason
	}
	_, aerr := s.patchCase(u, rec, map[string]any{"services_section": []any{item}})
	return asDomainError(aerr)
}

// SetConsent sets consent_for_services and disclosure_other_orgs as asUser.
func (s *Sim) SetConsent(caseID, asUser string, forServices, disclosureOtherOrgs bool) error {
	return s.PatchCase(caseID, asUser, map[string]any{
		"consent_for_services":  forServices,
		"disclosure_other_orgs": disclosureOtherOrgs,
	})
}

// UpdateReferral applies a referral PATCH body's data as asUser, exactly
// like PATCH /api/v2/cases/{id}/referrals/{rid} (invalid transitions are
// silently ignored).
func (s *Sim) UpdateReferral(caseID, referralID, asUser string, data map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, rec, err := s.actOn(caseID, asUser)
	if err != nil {
		return err
	}
	ref, aerr := s.findReferral(rec, referralID)
	if aerr == nil {
		d, _ := normalize(data).(map[string]any)
		if len(d) == 0 {
			return asDomainError(errParamMissing())
		}
		s.processReferral(u, rec, ref, d)
	}
	return asDomainError(aerr)
}

// Referrals returns the case's referrals in creation order. The
// viewer-dependent flags (record_access_denied, user_can_accept_or_reject)
// are left nil.
func (s *Sim) Referrals(caseID string) []refbridge.Referral {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]refbridge.Referral, 0, len(s.referrals[caseID]))
	for _, ref := range s.referrals[caseID] {
		out = append(out, ref.domain())
	}
	return out
}

// SyncLog returns the sync write-backs left on a case, oldest first.
func (s *Sim) SyncLog(caseID string) []SyncEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.syncLog[caseID])
}

// LastWrite returns the timestamp of the latest write (zero before any);
// handy to build last_updated_at cursors in tests.
func (s *Sim) LastWrite() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastWrite
}
