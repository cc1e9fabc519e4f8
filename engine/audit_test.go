package engine_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"refbridge"
	"refbridge/store"
)

// TestAuditRecordsWhoPermittedEachShare follows a referral to UNHCR and a
// proGres intervention through the engine and reads the audit trail: each
// share names who permitted it, to which peer and which fields — names
// only — and the chain verifies.
func TestAuditRecordsWhoPermittedEachShare(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	_, _, orgID := h.seedReferredCase("TST-00000005", true)
	h.poll()
	ref := h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	h.receiveInterventions(iv)
	in := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDone)

	events := func(id string) []refbridge.AuditEvent {
		t.Helper()
		evs, _, err := h.db.AuditEvents(ctx, store.AuditFilter{ExchangeID: id})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	find := func(evs []refbridge.AuditEvent, kind refbridge.AuditKind) refbridge.AuditEvent {
		t.Helper()
		for _, e := range evs {
			if e.Kind == kind {
				return e
			}
		}
		t.Fatalf("no %s event in %+v", kind, evs)
		return refbridge.AuditEvent{}
	}

	refEvents := events(ref.ID)
	consent := find(refEvents, refbridge.AuditConsentChecked)
	shared := find(refEvents, refbridge.AuditShared)
	if consent.Actor != "primero:"+caseWorker || shared.Actor != "primero:"+caseWorker || shared.Peer != "dtp" {
		t.Fatalf("referral share permitted by %q/%q to %q, want the referring case worker to dtp", consent.Actor, shared.Actor, shared.Peer)
	}
	if !slices.Contains(shared.Fields, "unhcr_individual_no") || !slices.Contains(shared.Fields, "id") {
		t.Fatalf("shared fields %v lack the referral's identifiers", shared.Fields)
	}
	inShared := find(events(in.ID), refbridge.AuditShared)
	if inShared.Actor != "progres:"+iv.BusinessOwner || inShared.Peer != "primero" || !slices.Contains(inShared.Fields, "services_section") {
		t.Fatalf("intervention share %+v, want the proGres owner, primero and the fields written", inShared)
	}

	// No personal value anywhere in the trail.
	all, _, err := h.db.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(all)
	for _, v := range []string{"Testchild", "Fixture", "2014-03-15", "+000000000001", "Test Camp"} {
		if strings.Contains(string(raw), v) {
			t.Fatalf("audit trail contains %q", v)
		}
	}
	if n, err := h.db.VerifyAudit(ctx); err != nil || n == 0 {
		t.Fatalf("verify: %d events, %v", n, err)
	}
}
