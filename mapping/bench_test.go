//go:build unix

package mapping_test

import (
	"syscall"
	"testing"
	"time"

	"refbridge/mapping"
)

// BenchmarkInterventionToCase maps the fixture's complete intervention: the
// work the inbox does per intervention once the batch is decoded. Target:
// at least 200,000 mappings per second on one core (-cpu 1).
func BenchmarkInterventionToCase(b *testing.B) {
	p := gambella(b)
	f := mapping.FoldInterventions(interventions(b)[:1])[0]
	now := processingTime()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		if _, ps := mapping.InterventionToCase(p, f, now); ps != nil {
			b.Fatal(ps)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "mappings/s")
	// On a shared machine wall time includes waiting for a core; the
	// process's CPU time (GC included) is what the mapping costs.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
