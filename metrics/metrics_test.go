package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"refbridge"
	"refbridge/metrics"
)

// countingStore is a metrics source that counts its reads.
type countingStore struct {
	reads  atomic.Int32
	err    error
	counts map[refbridge.Flow]map[refbridge.ExchangeState]int
	poll   time.Time
}

func (s *countingStore) Counts(context.Context, time.Time) (map[refbridge.Flow]map[refbridge.ExchangeState]int, error) {
	s.reads.Add(1)
	return s.counts, s.err
}

func (s *countingStore) QueueDepth(context.Context) (map[string]int, error) {
	return map[string]int{"available": 3, "running": 1, "a-job-id-123": 7}, s.err
}

func (s *countingStore) LastPoll(context.Context) (time.Time, error) { return s.poll, s.err }

type circuits map[string]string

func (c circuits) CircuitStates() map[string]string { return c }

// clock is a settable test clock.
type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) now() time.Time      { return *c.t.Load() }
func (c *clock) set(t time.Time)     { c.t.Store(&t) }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

func gather(t *testing.T, r *metrics.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func value(fam *dto.MetricFamily, labels ...string) (float64, bool) {
	for _, m := range fam.GetMetric() {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// TestLabelsAreCodesOnly feeds values that are not codes (as a bug
// upstream might) and checks they are reported as "other".
func TestLabelsAreCodesOnly(t *testing.T) {
	t.Parallel()
	r := metrics.New(metrics.Config{})
	r.Retried("0195f7c2-child-case-id", refbridge.ErrorCode("Amina Yusuf"))
	r.DeadLettered(refbridge.FlowReferral, refbridge.ETransient)
	r.Transitioned(refbridge.FlowIntervention, refbridge.StateMapped, refbridge.StateDelivered, 1500*time.Millisecond)
	r.Transitioned(refbridge.FlowIntervention, refbridge.StateReceived, refbridge.StateMapped, time.Second) // not a delivery
	r.ObservePeerRequest("https://primero.example/api", "418 teapot", time.Second)
	fams := gather(t, r)
	tests := []struct {
		family string
		labels []string
		want   float64
	}{
		{metrics.NameRetries, []string{"flow", "other", "code", "other"}, 1},
		{metrics.NameDeadLetters, []string{"flow", "F2", "code", "transient"}, 1},
		{metrics.NameDeliverySeconds, []string{"flow", "F1", "state", "delivered"}, 1},
		{metrics.NameDeliverySeconds, []string{"flow", "F1", "state", "done"}, 0},
		{metrics.NamePeerRequestSeconds, []string{"peer", "other", "status_class", "other"}, 1},
	}
	for _, tc := range tests {
		got, ok := value(fams[tc.family], tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.family, tc.labels, got, ok, tc.want)
		}
	}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), "Amina") || strings.Contains(lp.GetValue(), "case-id") || strings.Contains(lp.GetValue(), "example") {
					t.Errorf("%s carries %q", name, lp.GetValue())
				}
			}
		}
	}
}

// TestStateIsReadAtScrapeTimeWithACache checks the gauges read from the
// sources: zero-filled, cached for the TTL, read again after it, and a
// failing source reported as down instead of as zeros.
func TestStateIsReadAtScrapeTimeWithACache(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	clk.set(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	src := &countingStore{
		counts: map[refbridge.Flow]map[refbridge.ExchangeState]int{refbridge.FlowIntervention: {refbridge.StateDone: 5}},
		poll:   clk.now().Add(-90 * time.Second),
	}
	r := metrics.New(metrics.Config{Now: clk.now, CacheTTL: 10 * time.Second})
	if err := r.Watch(metrics.Sources{Exchanges: src, Queue: src, Poll: src, Circuits: circuits{"primero": "open", "dtp": "closed"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Watch(metrics.Sources{}); err == nil {
		t.Error("a second Watch was accepted")
	}
	fams := gather(t, r)
	checks := []struct {
		family string
		labels []string
		want   float64
	}{
		{metrics.NameExchanges, []string{"flow", "F1", "state", "done"}, 5},
		{metrics.NameExchanges, []string{"flow", "F2d", "state", "dead"}, 0},
		{metrics.NameQueueJobs, []string{"state", "available"}, 3},
		{metrics.NameQueueJobs, []string{"state", "other"}, 7},
		{metrics.NameCircuitState, []string{"peer", "primero", "state", "open"}, 1},
		{metrics.NameCircuitState, []string{"peer", "primero", "state", "closed"}, 0},
		{metrics.NameCircuitState, []string{"peer", "dtp", "state", "closed"}, 1},
		{metrics.NamePollLag, nil, 90},
		{metrics.NameSourceUp, []string{"source", "exchanges"}, 1},
	}
	for _, tc := range checks {
		if got, ok := value(fams[tc.family], tc.labels...); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.family, tc.labels, got, ok, tc.want)
		}
	}

	clk.add(5 * time.Second) // within the TTL: no new read, but the lag grows
	fams = gather(t, r)
	if n := src.reads.Load(); n != 1 {
		t.Errorf("store read %d times within the TTL, want 1", n)
	}
	if got, _ := value(fams[metrics.NamePollLag]); got != 95 {
		t.Errorf("poll lag %v after 5s more, want 95", got)
	}

	src.err = errors.New("database is locked")
	clk.add(10 * time.Second)
	fams = gather(t, r)
	if n := src.reads.Load(); n != 2 {
		t.Errorf("store read %d times after the TTL, want 2", n)
	}
	if got, _ := value(fams[metrics.NameSourceUp], "source", "exchanges"); got != 0 {
		t.Errorf("source up = %v with a failing store, want 0", got)
	}
	if _, ok := value(fams[metrics.NameExchanges], "flow", "F1", "state", "done"); ok {
		t.Error("exchange gauges reported from a failed read")
	}
}

// TestHandlerServesTheRegistry checks the exposition over HTTP, with the
// Go runtime metrics of this registry (not the global one).
func TestHandlerServesTheRegistry(t *testing.T) {
	t.Parallel()
	r := metrics.New(metrics.Config{})
	r.Retried(refbridge.FlowReferral, refbridge.ETransient)
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`refbridge_retries_total{code="transient",flow="F2"} 1`, "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
