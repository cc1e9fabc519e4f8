package engine_test

import (
	"context"
	"testing"
	"time"

	"refbridge"
	"refbridge/store"
)

// TestPurgeJobEndsRetention: with a retention, a finished exchange keeps
// its payload until the engine's scheduled purge runs after the retention
// has passed (before this job existed, nothing ever purged such payloads).
func TestPurgeJobEndsRetention(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withRetention(50*time.Millisecond))
	ctx := context.Background()
	iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
	h.receiveInterventions(iv)
	ex := h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, refbridge.StateDone)
	if ex.Payload == nil || !ex.PurgedAt.IsZero() {
		t.Fatalf("within its retention a finished exchange lost its payload: purged at %v", ex.PurgedAt)
	}
	time.Sleep(100 * time.Millisecond)
	// The queue as serve runs it: with the engine's periodic jobs, which run
	// once at start and then on their schedule.
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.queue.Stop(stop); err != nil {
		t.Fatal(err)
	}
	q, err := h.db.NewQueue(store.QueueConfig{Workers: h.eng.Workers(), PeriodicJobs: h.eng.PeriodicJobs(), MaxWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(stop)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := h.db.Get(ctx, ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Payload == nil && !got.PurgedAt.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduled purge left the payload of an exchange past its retention")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
