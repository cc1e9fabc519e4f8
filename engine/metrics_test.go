package engine_test

import (
	"maps"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/fault"
)

// recordedMetrics is an engine.Metrics that remembers what it was told.
type recordedMetrics struct {
	mu      sync.Mutex
	retried map[string]int // "flow code"
	dead    map[string]int // "flow code"
	reached map[string]int // "flow from>to"
	ages    []time.Duration
}

func newRecordedMetrics() *recordedMetrics {
	return &recordedMetrics{retried: map[string]int{}, dead: map[string]int{}, reached: map[string]int{}}
}

func (m *recordedMetrics) Transitioned(flow refbridge.Flow, from, to refbridge.ExchangeState, age time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reached[string(flow)+" "+string(from)+">"+string(to)]++
	m.ages = append(m.ages, age)
}

func (m *recordedMetrics) Retried(flow refbridge.Flow, code refbridge.ErrorCode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retried[string(flow)+" "+string(code)]++
}

func (m *recordedMetrics) DeadLettered(flow refbridge.Flow, code refbridge.ErrorCode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead[string(flow)+" "+string(code)]++
}

func (m *recordedMetrics) snapshot() (retried, dead, reached map[string]int, ages []time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.retried), maps.Clone(m.dead), maps.Clone(m.reached), append([]time.Duration(nil), m.ages...)
}

// TestMetricsOfFailuresAndDeliveries runs exchanges through the real
// engine and checks what it reports: each retry with its flow and code, a
// dead letter once with the last failure's code, and each state reached.
func TestMetricsOfFailuresAndDeliveries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int // DTP's answer to every call; 0 = no fault
		final       refbridge.ExchangeState
		wantRetried map[string]int
		wantDead    map[string]int
		wantReached []string
	}{
		{"done", 0, refbridge.StateDone, map[string]int{}, map[string]int{},
			[]string{"F1 received>mapped", "F1 mapped>delivered", "F1 delivered>done"}},
		// The case reaches Primero (delivered); DTP's callback then fails.
		// Budget 4: three retries, then the fourth failure dead-letters.
		{"transient until the budget is spent", 502, refbridge.StateDead, map[string]int{"F1 transient": 3}, map[string]int{"F1 transient": 1},
			[]string{"F1 received>mapped", "F1 mapped>delivered", "F1 delivered>dead"}},
		{"refused at once", 400, refbridge.StateDead, map[string]int{}, map[string]int{"F1 invalid": 1},
			[]string{"F1 received>mapped", "F1 mapped>delivered", "F1 delivered>dead"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newRecordedMetrics()
			h := newHarness(t, withMetrics(m))
			if tc.status != 0 {
				h.dtp.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{tc.status}})
			}
			iv := fixture[refbridge.InterventionBatch](t, "dtp-interventions-inbound.json").Interventions[0]
			h.receiveInterventions(iv)
			h.waitFor(refbridge.FlowIntervention, iv.InterventionNumber, tc.final)
			// The engine reports a change once it has committed: the store
			// can show the final state a moment before the metrics do.
			retried, dead, reached, ages := m.snapshot()
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); retried, dead, reached, ages = m.snapshot() {
				if reached[tc.wantReached[len(tc.wantReached)-1]] > 0 && len(dead) == len(tc.wantDead) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !maps.Equal(retried, tc.wantRetried) {
				t.Errorf("retried %v, want %v", retried, tc.wantRetried)
			}
			if !maps.Equal(dead, tc.wantDead) {
				t.Errorf("dead-lettered %v, want %v", dead, tc.wantDead)
			}
			for _, r := range tc.wantReached {
				if reached[r] != 1 {
					t.Errorf("transition %q reported %d times, want 1 (all: %v)", r, reached[r], reached)
				}
			}
			for _, a := range ages {
				if a < 0 || a > time.Minute {
					t.Errorf("age %v is not the time since receipt", a)
				}
			}
		})
	}
}
