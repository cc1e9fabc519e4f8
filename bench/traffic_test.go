package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/profile"
)

// batchTemplate is a DTP intervention batch of size rows as JSON, each
// intervention number ending in a fixed-width slot: a fresh batch is the
// template with the slot replaced (a byte copy, next to nothing beside the
// work measured), so every batch holds new interventions, none duplicate.
type batchTemplate struct {
	body []byte
	size int
}

const slot = "##########"

func newBatchTemplate(tb testing.TB, p *profile.Profile, size int) batchTemplate {
	tb.Helper()
	var inbound []string
	for _, s := range p.Services() {
		if s.Progres != "" {
			inbound = append(inbound, s.Progres)
		}
	}
	rows := make([]refbridge.Intervention, size)
	for i := range rows {
		rows[i] = refbridge.Intervention{
			InterventionNumber: fmt.Sprintf("BEN-%s-PRTITV-%04d", slot, i), InterventionStartDate: "2026-11-01T00:00:00Z",
			InterventionType: inbound[i%len(inbound)], InterventionDesc: "<p>Synthetic benchmark referral</p>",
			ReasonForReferral: `[{"CreatedBy":"Bench Officer","Text":"Synthetic reason","CreatedOn":"2026-11-01T08:00:00Z"}]`,
			UserTitle:         "Bench Protection Officer", UserEmail: "bench.officer@example.org",
			IndividualID: fmt.Sprintf("BEN-%s-%04d", slot, i),
			RegistrationGroup: &refbridge.Lookup{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), LogicalName: "progres_registrationgroup",
				Name: "BEN-26-" + fmt.Sprint(i), KeyAttributes: []json.RawMessage{}},
			GivenName: fmt.Sprintf("Benchchild%d", i), FamilyName: "Synthetic", DateOfBirth: "2015-02-28T00:00:00Z",
			Sex: []string{"125080000", "125080001"}[i%2],
		}
	}
	body, err := json.Marshal(refbridge.InterventionBatch{Interventions: rows, RequestType: refbridge.RequestTypeOutgoingReferral})
	if err != nil {
		tb.Fatal(err)
	}
	return batchTemplate{body: body, size: size}
}

// batch returns batch number n of the run.
func (t batchTemplate) batch(n int) []byte {
	return bytes.ReplaceAll(t.body, []byte(slot), fmt.Appendf(nil, "%010d", n))
}

// latencies collects request durations from concurrent clients.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds p50-ms and p99-ms to the benchmark's output.
func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(q int) float64 {
		return float64(l.d[min(len(l.d)-1, len(l.d)*q/100)].Microseconds()) / 1000
	}
	b.ReportMetric(at(50), "p50-ms")
	b.ReportMetric(at(99), "p99-ms")
}
