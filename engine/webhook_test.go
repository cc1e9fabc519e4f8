package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestWebhooksCoalesceIntoFewInserts: webhooks arriving while a scan insert
// is being written are queued together by the next insert; every webhook
// returns only after its own case was in an insert, and an insert's error
// reaches exactly the webhooks it carried.
func TestWebhooksCoalesceIntoFewInserts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var (
		mu      sync.Mutex
		inserts [][]string
		queued  = map[string]bool{}
	)
	h.eng.SetTrigger(func(_ context.Context, ids []string) error {
		time.Sleep(20 * time.Millisecond) // a transaction's fsync, long enough for webhooks to pile up
		mu.Lock()
		defer mu.Unlock()
		inserts = append(inserts, slices.Clone(ids))
		for _, id := range ids {
			if queued[id] {
				return fmt.Errorf("case %s queued twice", id)
			}
			queued[id] = true
		}
		if slices.Contains(ids, "case-fails") {
			return errors.New("insert failed")
		}
		return nil
	})
	const webhooks = 60
	var wg sync.WaitGroup
	errs := make([]error, webhooks)
	for i := range webhooks {
		wg.Go(func() {
			id := fmt.Sprintf("case-%02d", i)
			if i == webhooks-1 {
				id = "case-fails"
			}
			errs[i] = h.eng.CaseChanged(context.Background(), id)
			mu.Lock()
			defer mu.Unlock()
			if !queued[id] {
				t.Errorf("webhook for %s returned before its scan was queued", id)
			}
		})
	}
	wg.Wait()
	if len(queued) != webhooks {
		t.Fatalf("%d cases queued, want %d", len(queued), webhooks)
	}
	if len(inserts) >= webhooks/2 {
		t.Fatalf("%d inserts for %d concurrent webhooks: not coalesced", len(inserts), webhooks)
	}
	var failedBatch []string
	for _, ids := range inserts {
		if slices.Contains(ids, "case-fails") {
			failedBatch = ids
		}
	}
	for i, err := range errs {
		id := fmt.Sprintf("case-%02d", i)
		if i == webhooks-1 {
			id = "case-fails"
		}
		if inFailed := slices.Contains(failedBatch, id); inFailed != (err != nil) {
			t.Errorf("webhook %s: error %v, but its insert failed = %v", id, err, inFailed)
		}
	}
	t.Logf("%d webhooks in %d inserts", webhooks, len(inserts))
}
