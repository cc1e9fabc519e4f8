package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkInterventionsHandler measures the edge's share of durable intake:
// decoding, checking, folding and answering a batch of 100 interventions
// over the in-memory inbox (the store adds its commit). Each iteration posts
// new intervention numbers, so every item is accepted, not a duplicate.
func BenchmarkInterventionsHandler(b *testing.B) {
	items := fixtureItems(b, "dtp-interventions-inbound.json")
	h := newHarness(b, newMemInbox(), nil)
	const perBatch = 100
	bodies := make([][]byte, 0, 64)
	for n := range cap(bodies) {
		batch := make([]any, perBatch)
		for i := range batch {
			it := clone(b, items[0])
			it["progres_interventionnumber"] = fmt.Sprintf("TST-BENCH-%04d-%03d", n, i)
			batch[i] = it
		}
		body, err := json.Marshal(map[string]any{"interventions": batch, "request_type": f1})
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(bodies) == 0 {
			h.inbox.Inbox.(*memInbox).reset()
			h.reset()
		}
		if r := h.postDTP(b, RouteInterventions, bodies[i%len(bodies)], tokenA); r.status != http.StatusOK {
			b.Fatalf("status %d", r.status)
		}
		i++
	}
	b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "interventions/s")
}
