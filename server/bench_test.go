package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkInterventionsHandler measures durable intake end to end through
// the handler: decoding, checking, folding and validating a batch of 100
// interventions against the Gambella profile, then storing it in the real
// store (encrypted, one fsynced transaction, a River job per item) and
// answering. Each iteration posts new intervention numbers, so every item
// is accepted, not a duplicate.
func BenchmarkInterventionsHandler(b *testing.B) {
	items := fixtureItems(b, "dtp-interventions-inbound.json")
	h := newHarness(b, newStore(b), nil)
	const perBatch = 100
	// The numbers carry a fixed-width batch counter, written into a copy of
	// the body per iteration: a copy costs next to nothing beside the commit.
	const slot = "########"
	batch := make([]any, perBatch)
	for i := range batch {
		batch[i] = withNumber(b, items[0], fmt.Sprintf("TST-BENCH-%s-%03d", slot, i))
	}
	tmpl, err := json.Marshal(map[string]any{"interventions": batch, "request_type": f1})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tmpl)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		body := bytes.ReplaceAll(tmpl, []byte(slot), fmt.Appendf(nil, "%08d", n))
		r := h.postDTP(b, RouteInterventions, body, tokenA)
		if r.status != http.StatusOK {
			b.Fatalf("status %d: %s", r.status, r.body)
		}
		if n == 0 {
			if resp := batchAnswer(b, r); resp.Accepted != perBatch {
				b.Fatalf("accepted %d of %d: %s", resp.Accepted, perBatch, r.body)
			}
		}
		n++
		h.reset()
	}
	b.ReportMetric(float64(n*perBatch)/b.Elapsed().Seconds(), "interventions/s")
}
