package engine_test

import (
	"context"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
	"refbridge/primero/primerotest"
	"refbridge/store"
)

// TestRetryResumesEveryDeadState dead-letters an exchange in each state a
// flow can die in — by making the peer that step calls fail past the
// budget — then fixes the peer and retries it as a focal point would: the
// exchange resumes in the state it died in (whose payload the step knows
// how to read) and finishes, each effect happening once.
func TestRetryResumesEveryDeadState(t *testing.T) {
	t.Parallel()
	batch := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions
	tests := []struct {
		name string
		// breakPeer makes the step fail; run starts the exchange and returns its flow and key.
		breakPeer func(h *harness)
		run       func(h *harness) (refbridge.Flow, string)
		diedIn    refbridge.ExchangeState
		// finish is the state the retried exchange must reach; check what the peers saw.
		finish refbridge.ExchangeState
		check  func(t *testing.T, h *harness, key string)
	}{
		{
			name:      "F1CallbackInDelivered",
			breakPeer: func(h *harness) { h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{502}}) },
			run: func(h *harness) (refbridge.Flow, string) {
				h.receiveInterventions(batch[0])
				return refbridge.FlowIntervention, batch[0].InterventionNumber
			},
			diedIn: refbridge.StateDelivered, finish: refbridge.StateDone,
			check: func(t *testing.T, h *harness, key string) {
				k := dtptest.StatusKey{InterventionNumber: key, Status: refbridge.StatusPendingAcknowledgement}
				if n := h.dtp.StatusCounts()[k]; n != 1 {
					t.Fatalf("callback sent %d times, want 1", n)
				}
				if n := len(h.primero.CaseIDs()); n != 1 {
					t.Fatalf("%d cases, want 1", n)
				}
			},
		},
		{
			name: "F1UpsertInMapped",
			breakPeer: func(h *harness) {
				h.primero.Faults().Set(primerotest.PatternListCases, fault.Rule{ErrorRate: 1, Statuses: []int{502}})
			},
			run: func(h *harness) (refbridge.Flow, string) {
				h.receiveInterventions(batch[0])
				return refbridge.FlowIntervention, batch[0].InterventionNumber
			},
			diedIn: refbridge.StateMapped, finish: refbridge.StateDone,
			check: func(t *testing.T, h *harness, key string) {
				if n := len(h.primero.CaseIDs()); n != 1 {
					t.Fatalf("%d cases, want 1", n)
				}
			},
		},
		{
			// The refusal's problems must survive death and retry: they are
			// what the Delivery Fail callback tells DTP.
			name:      "F1RefusalInRejected",
			breakPeer: func(h *harness) { h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{502}}) },
			run: func(h *harness) (refbridge.Flow, string) {
				h.receiveInterventions(batch[1])
				return refbridge.FlowIntervention, batch[1].InterventionNumber
			},
			diedIn: refbridge.StateRejected, finish: refbridge.StateFailed,
			check: func(t *testing.T, h *harness, key string) {
				k := dtptest.StatusKey{InterventionNumber: key, Status: refbridge.StatusDeliveryFail}
				if n := h.dtp.StatusCounts()[k]; n != 1 {
					t.Fatalf("failure callback sent %d times, want 1", n)
				}
				ex, _ := h.db.GetByKey(context.Background(), refbridge.FlowIntervention, key)
				if !hasProblem(ex.Problems, "individuals.progres_familyname", "required") {
					t.Fatalf("problems after retry %+v lost the refusal's reasons", ex.Problems)
				}
			},
		},
		{
			name: "F2SendInMapped",
			breakPeer: func(h *harness) {
				h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{502}})
			},
			run: func(h *harness) (refbridge.Flow, string) {
				_, _, orgID := h.seedReferredCase("TST-00000031", true)
				h.poll()
				return refbridge.FlowReferral, orgID
			},
			diedIn: refbridge.StateMapped, finish: refbridge.StateDelivered,
			check: func(t *testing.T, h *harness, key string) {
				if n := h.dtp.ReferralCounts()[key]; n != 1 {
					t.Fatalf("referral sent %d times, want 1", n)
				}
			},
		},
		{
			// Dead with reason sync_pending: the step in delivered acts only
			// on that reason, so the reason must come back too.
			name: "F2SyncInDelivered",
			breakPeer: func(h *harness) {
				h.primero.Faults().Set(primerotest.PatternPatchCase, fault.Rule{ErrorRate: 1, Statuses: []int{502}})
			},
			run: func(h *harness) (refbridge.Flow, string) {
				_, _, orgID := h.seedReferredCase("TST-00000032", true)
				h.poll()
				return refbridge.FlowReferral, orgID
			},
			diedIn: refbridge.StateDelivered, finish: refbridge.StateDelivered,
			check: func(t *testing.T, h *harness, key string) {
				ex := h.waitForReason(refbridge.FlowReferral, key, "awaiting_decision")
				if ex.State != refbridge.StateDelivered {
					t.Fatalf("state %s", ex.State)
				}
				if n := h.dtp.ReferralCounts()[key]; n != 1 {
					t.Fatalf("referral sent %d times, want 1", n)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tc.breakPeer(h)
			flow, key := tc.run(h)
			dead := h.waitFor(flow, key, refbridge.StateDead)
			if dead.DeadFrom != tc.diedIn {
				t.Fatalf("died from %q, want %q", dead.DeadFrom, tc.diedIn)
			}
			h.dtp.Faults().Clear()
			h.primero.Faults().Clear()
			ex, err := h.db.Retry(context.Background(), dead.ID, "fp.gambella", "peer_fixed")
			if err != nil {
				t.Fatal(err)
			}
			if ex.State != tc.diedIn || ex.Attempts != 0 {
				t.Fatalf("retry resumed in %s with %d attempts, want %s with 0", ex.State, ex.Attempts, tc.diedIn)
			}
			h.waitFor(flow, key, tc.finish)
			tc.check(t, h, key)
			evs, _, err := h.db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: dead.ID})
			if err != nil {
				t.Fatal(err)
			}
			if !hasEvent(evs, refbridge.AuditRetried, "fp.gambella", "peer_fixed") {
				t.Fatal("no retried event naming the focal point and reason")
			}
		})
	}
}

// TestDiscardEndsDeadExchange: a discarded dead exchange is failed, its
// payload purged, nothing more is sent, and the focal point is recorded.
func TestDiscardEndsDeadExchange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{400}})
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	h.receiveInterventions(iv)
	dead := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDead)
	h.dtp.Faults().Clear()
	ex, err := h.db.Discard(context.Background(), dead.ID, "fp.gambella", "duplicate")
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != refbridge.StateFailed || ex.Reason != store.ReasonDiscarded {
		t.Fatalf("discarded: %s %s", ex.State, ex.Reason)
	}
	got, err := h.db.Get(context.Background(), dead.ID)
	if err != nil || got.Payload != nil {
		t.Fatalf("payload kept after discard (%v)", err)
	}
	if _, err := h.db.Retry(context.Background(), dead.ID, "fp.gambella", "peer_fixed"); refbridge.ErrorCodeOf(err) != refbridge.EConflict {
		t.Fatalf("retry after discard: %v, want conflict", err)
	}
	if _, err := h.db.Requeue(context.Background(), store.Filter{}); err != nil {
		t.Fatal(err)
	}
	k := dtptest.StatusKey{InterventionNumber: iv.InterventionNumber, Status: refbridge.StatusPendingAcknowledgement}
	if n := h.dtp.StatusCounts()[k]; n != 0 {
		t.Fatalf("a discarded exchange's callback was sent %d times", n)
	}
	evs, _, _ := h.db.AuditEvents(context.Background(), store.AuditFilter{ExchangeID: dead.ID})
	if !hasEvent(evs, refbridge.AuditDiscarded, "fp.gambella", "duplicate") {
		t.Fatal("no discarded event naming the focal point and reason")
	}
}

func hasEvent(evs []refbridge.AuditEvent, kind refbridge.AuditKind, actor, reason string) bool {
	for _, e := range evs {
		if e.Kind == kind && e.Actor == actor && e.Reason == reason {
			return true
		}
	}
	return false
}

// waitForReason waits until the exchange flow/key has that reason.
func (h *harness) waitForReason(flow refbridge.Flow, key, reason string) refbridge.Exchange {
	h.t.Helper()
	for range 1500 {
		ex, err := h.db.GetByKey(context.Background(), flow, key)
		if err == nil && ex.Reason == reason {
			return ex
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s %s never reached reason %s", flow, key, reason)
	return refbridge.Exchange{}
}
