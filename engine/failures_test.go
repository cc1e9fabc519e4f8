package engine_test

import (
	"testing"

	"refbridge"
	"refbridge/fault"
)

// TestRetryBudgetDeadLetters: a peer failing transiently for longer than
// the budget dead-letters the exchange with its reason and keeps its
// payload for a retry; the circuit opened on the way.
func TestRetryBudgetDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{502}})
	batch := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions
	iv := batch[0]
	h.receiveInterventions(batch[0], batch[2]) // two exchanges: enough failures in a row to open the circuit
	h.waitFor(refbridge.FlowIntervention, batch[2].InterventionNumber, refbridge.StateDead)
	ex := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDead)
	if ex.Reason != "retry_budget_spent" || ex.LastError != refbridge.ETransient || ex.Attempts != 4 {
		t.Fatalf("dead with reason %q, last error %q, %d attempts; want retry_budget_spent, transient, 4", ex.Reason, ex.LastError, ex.Attempts)
	}
	if ex.Payload == nil {
		t.Fatal("a dead exchange lost its payload; the focal point cannot retry it")
	}
	if got := h.eng.CircuitStates()["dtp"]; got == "closed" {
		t.Fatalf("dtp circuit %s after repeated failures, want open or half-open", got)
	}
}

// TestPermanentRefusalDeadLettersAtOnce: DTP refusing the message itself
// (400) is not retried; the exchange is dead at once with the code.
func TestPermanentRefusalDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{400}})
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	h.receiveInterventions(iv)
	ex := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDead)
	if ex.Reason != string(refbridge.EInvalid) || ex.Attempts != 1 {
		t.Fatalf("reason %q after %d attempts, want invalid after 1", ex.Reason, ex.Attempts)
	}
}
