package crashtest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp"
	"refbridge/dtp/dtptest"
	"refbridge/engine"
	"refbridge/fault"
	"refbridge/mapping"
	"refbridge/primero"
	"refbridge/primero/primerotest"
	"refbridge/profile"
	"refbridge/store"
)

// pollHarness is the engine in this process on a real store, with both
// simulators and no queue: the test runs the polls and the processing.
type pollHarness struct {
	t       *testing.T
	profile *profile.Profile
	db      *store.DB
	eng     *engine.Engine
	primero *primerotest.Sim
	dtp     *dtptest.Sim
	// skew moves Primero's clock forward (ns), for changes made in a
	// later second than what a poll has read: Primero compares whole
	// seconds, so a change within the same second is found again anyway.
	skew atomic.Int64
}

func newPollHarness(t *testing.T) *pollHarness {
	t.Helper()
	p, err := profile.Load("gambella")
	if err != nil {
		t.Fatal(err)
	}
	h := &pollHarness{t: t, profile: p}
	psim := primerotest.NewServer(t, primerotest.Options{Seed: 7,
		Now: func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) }})
	phone := "+000000000900"
	psim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: apiUser}, Password: "pw", Scope: primerotest.ScopeAll,
		Permissions: []string{primerotest.PermSyncExternal}})
	for _, name := range []string{caseWorker, unhcrUser, p.Intake().Owner, p.Referrals().FallbackUser} {
		psim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: name, FullName: "Test " + name, Email: name + "@example.org",
			Phone: &phone, Position: "Test position"}, Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	}
	fast := refbridge.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxRetryAfter: time.Second}
	pc, err := primero.New(primero.Config{BaseURL: psim.URL, UserName: apiUser, Password: "pw", Timeout: 10 * time.Second, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	dsim := dtptest.NewServer(t, dtptest.Options{Seed: 7})
	pki := dsim.PKI()
	dc, err := dtp.New(dtp.Config{ReferralURL: dsim.ReferralURL(), DecisionURL: dsim.DecisionURL(), SubscriptionKey: dtptest.DefaultSubscriptionKey,
		CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, CAFile: pki.CAFile, Timeout: 10 * time.Second, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), store.Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The production defaults for the poll: a 10-minute overlap.
	eng, err := engine.New(engine.Config{Profile: p, Store: db, Primero: pc, DTP: dc, PollInterval: time.Hour,
		Retry: refbridge.RetryPolicy{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	h.db, h.eng, h.primero, h.dtp = db, eng, psim, dsim
	return h
}

// refer creates, as a case worker, a case with a service implemented by
// UNHCR and refers it; it returns the DTP org-referral id.
func (h *pollHarness) refer(n int) string {
	h.t.Helper()
	id := h.primero.SeedCase(h.plainCase(n))
	svc, err := h.primero.AddService(id, caseWorker, map[string]any{
		"service_type": "shelter", "service_implementing_agency": h.profile.Referrals().ReceivingAgency,
		"service_response_type": "service_provision", "service_response_day_time": "2026-11-02T10:00:00.000Z",
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.primero.ReferService(id, svc, caseWorker, unhcrUser, false); err != nil {
		h.t.Fatal(err)
	}
	return mapping.OrgReferralID(h.primero.Case(id)["case_id"].(string), svc)
}

// plainCase is a consenting child's case without any referral.
func (h *pollHarness) plainCase(n int) map[string]any {
	return map[string]any{
		"owned_by": caseWorker, "owned_by_agency_id": "UNICEF", "module_id": "primeromodule-cp", "status": "open",
		"name_first": fmt.Sprintf("Polled%d", n), "name_last": "Synthetic", "date_of_birth": "2014-03-15", "sex": "female",
		"unhcr_individual_no": fmt.Sprintf("POLL-%07d", n), "unhcr_id_no": "POLL-26", "language": []any{"language2"},
		"address_current": "Test camp", "consent_for_services": true, "disclosure_other_orgs": true,
	}
}

func (h *pollHarness) poll() {
	h.t.Helper()
	if _, err := h.eng.Poll(context.Background()); err != nil {
		h.t.Fatalf("poll: %v", err)
	}
}

// stored reports whether the store holds the referral's exchange.
func (h *pollHarness) stored(org string) bool {
	h.t.Helper()
	_, err := h.db.GetByKey(context.Background(), refbridge.FlowReferral, org)
	switch refbridge.ErrorCodeOf(err) {
	case "":
		return true
	case refbridge.ENotFound:
		return false
	}
	h.t.Fatal(err)
	return false
}

// deliver works the referral's exchange as the queue would and returns it.
func (h *pollHarness) deliver(org string) refbridge.Exchange {
	h.t.Helper()
	ctx := context.Background()
	ex, err := h.db.GetByKey(ctx, refbridge.FlowReferral, org)
	if err != nil {
		h.t.Fatalf("referral %s not stored: %v", org, err)
	}
	if err := h.eng.Process(ctx, ex.ID); err != nil {
		h.t.Fatalf("process %s: %v", org, err)
	}
	if ex, err = h.db.Get(ctx, ex.ID); err != nil {
		h.t.Fatal(err)
	}
	return ex
}

// TestCaseUpdatedDuringPollIsPickedUpByNextPoll holds one of the poll's
// Primero requests with fault Latency and, while it is held, makes the
// change a cursor must not lose; the next poll must store the referral and
// it must reach DTP exactly once, however many polls see it again.
//
// A referral created while the poll reads the referrals of the cases it
// listed cannot be seen by that poll, which the case asserts (a cursor set
// to "now" at the end would skip it for ever). A case re-saved while page 2
// is requested shifts the first case of page 2 onto page 1: a walk by page
// numbers skipped it, and a cursor set to the newest case seen without
// overlap lost it for ever; the walk by last_updated_at (keyset) must find
// it in that same poll. The third case is the literal one: the list request
// itself held while the referral is made; its page is read after the hold,
// so either poll may find it.
func TestCaseUpdatedDuringPollIsPickedUpByNextPoll(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup makes the cases before the poll and returns the referral
		// the test follows when it exists already ("" = made by during).
		setup func(h *pollHarness) string
		// hold is the route held; the change is made while its nth
		// request of the poll is held.
		hold string
		nth  int
		// during makes the change; it returns the referral to follow when
		// it creates one.
		during func(h *pollHarness) string
		// missedByFirst: the held poll cannot have seen the change.
		missedByFirst bool
		// foundByFirst: the held poll itself must store the referral.
		foundByFirst bool
	}{
		{
			name:          "referral made while the poll reads referrals",
			setup:         func(h *pollHarness) string { h.refer(1); return "" },
			hold:          primerotest.PatternListReferrals,
			nth:           1,
			during:        func(h *pollHarness) string { return h.refer(2) },
			missedByFirst: true,
		},
		{
			name: "case re-saved while page 2 is requested shifts a referral onto page 1",
			setup: func(h *pollHarness) string {
				// 500 cases fill page 1 (per = 500), the referral is the
				// first case of page 2.
				h.primero.SeedCases(primero.DefaultPer, func(i int) map[string]any { return h.plainCase(100 + i) })
				org := h.refer(1)
				h.skew.Add(int64(3 * time.Second)) // what follows is seconds newer
				h.primero.SeedCases(20, func(i int) map[string]any { return h.plainCase(1000 + i) })
				return org
			},
			hold: primerotest.PatternListCases,
			nth:  2,
			during: func(h *pollHarness) string {
				h.skew.Add(int64(3 * time.Second))
				first := h.primero.CaseIDs()[0]
				if err := h.primero.PatchCase(first, caseWorker, map[string]any{"address_current": "Moved camp"}); err != nil {
					h.t.Fatal(err)
				}
				return ""
			},
			// Page numbers would skip it (it shifts onto page 1, read
			// already); the walk by last_updated_at goes on from the last
			// second it read, so the same poll finds it.
			foundByFirst: true,
		},
		{
			name:   "list-cases request held while a referral is made",
			setup:  func(h *pollHarness) string { h.refer(1); return "" },
			hold:   primerotest.PatternListCases,
			nth:    1,
			during: func(h *pollHarness) string { return h.refer(2) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newPollHarness(t)
			org := tc.setup(h)
			base := h.primero.Requests(tc.hold)
			h.primero.Faults().Set(tc.hold, fault.Rule{Latency: 700 * time.Millisecond})
			polled := make(chan error, 1)
			go func() { _, err := h.eng.Poll(context.Background()); polled <- err }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if ok, _ := waitUntil(ctx, time.Millisecond, func() (bool, string) { return h.primero.Requests(tc.hold) >= base+tc.nth, "" }); !ok {
				t.Fatalf("the poll never requested %s %d times", tc.hold, tc.nth)
			}
			if made := tc.during(h); made != "" {
				org = made
			}
			if err := <-polled; err != nil {
				t.Fatalf("first poll: %v", err)
			}
			h.primero.Faults().Clear()
			if tc.missedByFirst && h.stored(org) {
				t.Fatal("sanity: the held poll already stored the referral; the case proves nothing")
			}
			if tc.foundByFirst && !h.stored(org) {
				t.Fatal("the held poll skipped the referral shifted onto a page it had read")
			}

			h.poll()
			if !h.stored(org) {
				t.Fatal("the next poll did not pick up the referral")
			}
			if ex := h.deliver(org); ex.State != refbridge.StateDelivered {
				t.Fatalf("referral %s, want delivered", ex.State)
			}
			h.poll() // the overlap sees it again: a duplicate, not a second send
			h.deliver(org)
			if n := h.dtp.ReferralCounts()[org]; n != 1 {
				t.Fatalf("referral reached DTP %d times, want 1", n)
			}
		})
	}
}
