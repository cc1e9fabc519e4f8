package engine_test

import (
	"context"
	"strings"
	"testing"

	"refbridge"
	"refbridge/profile"
	"refbridge/store"
)

// overrideProfile is the Gambella profile with the consent override its
// comments describe switched on.
func overrideProfile(t *testing.T) *profile.Profile {
	t.Helper()
	src, err := profile.Read("gambella")
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "    review: true  # the case also has unhcr_export_opt_in"
	if !strings.Contains(string(src), anchor) {
		t.Fatal("the Gambella profile's consent rule moved; update this test")
	}
	edited := strings.Replace(string(src), anchor,
		"    override: [{field: referral.consent_overridden, equals: true}]\n"+anchor, 1)
	p, err := profile.Parse([]byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func auditKinds(t *testing.T, h *harness, id string) ([]refbridge.AuditEvent, []string) {
	t.Helper()
	evs, _, err := h.db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: id})
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, len(evs))
	for i, ev := range evs {
		kinds[i] = string(ev.Kind)
	}
	return evs, kinds
}

// TestConsentOverride: a Primero user's consent override on a referral
// without consent is honoured only when the profile allows overrides, and
// then audited as an override by that user.
func TestConsentOverride(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		profile func(*testing.T) *profile.Profile
		want    refbridge.ExchangeState
	}{
		{"profile without overrides holds it", func(t *testing.T) *profile.Profile {
			p, err := profile.Load("gambella")
			if err != nil {
				t.Fatal(err)
			}
			return p
		}, refbridge.StateHeld},
		{"profile allowing overrides sends it", overrideProfile, refbridge.StateDelivered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withProfile(tc.profile(t)))
			_, _, orgID := h.seedCase("TST-00000011", false, true)
			h.poll()
			ex := h.waitFor(refbridge.FlowReferral, orgID, tc.want)
			sent := h.dtp.ReferralCounts()[orgID]
			evs, kinds := auditKinds(t, h, ex.ID)
			if tc.want == refbridge.StateHeld {
				if ex.Reason != "consent_missing" || sent != 0 {
					t.Fatalf("reason %q, sent %d times; want consent_missing and never sent", ex.Reason, sent)
				}
				return
			}
			if sent != 1 {
				t.Fatalf("overridden referral sent %d times, want 1", sent)
			}
			var checked *refbridge.AuditEvent
			for i := range evs {
				if evs[i].Kind == refbridge.AuditConsentChecked {
					checked = &evs[i]
				}
			}
			if checked == nil || !checked.Override || checked.Actor != "primero:"+caseWorker {
				t.Fatalf("events %v: want a consent_checked event marked as an override by %s, got %+v", kinds, caseWorker, checked)
			}
		})
	}
}

// TestReleaseIsAudited: a referral held for consent and released when the
// case worker records consent leaves, in order, held → released (by the
// user who recorded consent) → consent_checked → shared.
func TestReleaseIsAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id, _, orgID := h.seedReferredCase("TST-00000012", true)
	if err := h.primero.SetConsent(id, caseWorker, false, false); err != nil {
		t.Fatal(err)
	}
	h.poll()
	h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateHeld)
	h.poll() // nothing changed: still held, no second event
	if err := h.primero.SetConsent(id, caseWorker, true, true); err != nil {
		t.Fatal(err)
	}
	h.poll()
	ex := h.waitFor(refbridge.FlowReferral, orgID, refbridge.StateDelivered)
	evs, kinds := auditKinds(t, h, ex.ID)
	want := []string{"received", "held", "released", "consent_checked", "shared"}
	if got := strings.Join(kinds, " "); !strings.HasPrefix(got, strings.Join(want, " ")) {
		t.Fatalf("audit events %q, want them to start with %q", got, want)
	}
	if evs[2].Actor != "primero:"+caseWorker {
		t.Fatalf("released by %q, want the case worker who recorded consent", evs[2].Actor)
	}
	if n := h.dtp.ReferralCounts()[orgID]; n != 1 {
		t.Fatalf("released referral sent %d times, want 1", n)
	}
}
