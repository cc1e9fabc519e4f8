package crashtest

import (
	"context"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
)

// TestPeerDownForTheWholeRun keeps DTP down (every call 503) while
// interventions, referrals and case workers' decisions arrive: every
// exchange that owes DTP a message must stay queued and visible in the
// store with its last error transient, none dead-lettered, none lost; when
// DTP comes back each message reaches it exactly once.
func TestPeerDownForTheWholeRun(t *testing.T) {
	t.Parallel()
	s := seed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 8, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second})
	down := fault.Rule{ErrorRate: 1, Statuses: []int{503}}
	w.dtp.Faults().Set("*", down)
	tr := newTraffic(w, 60, s, 2*time.Second)
	tr.noUNHCRDecisions = true
	w.start()
	tr.run(ctx)
	for _, err := range tr.errors() {
		t.Fatal(err)
	}
	// Every exchange has had time to try DTP (or be refused by the open
	// circuit) while DTP answered nothing but 503.
	ok, _ := waitUntil(ctx, 100*time.Millisecond, func() (bool, string) {
		return w.dtp.Faults().Injected("*") > 0, ""
	})
	if !ok {
		t.Fatal("the bridge never called DTP")
	}
	sleep(ctx, 3*time.Second)
	t.Logf("DTP refused %d calls (referral %d, status %d)", w.dtp.Faults().Injected("*"),
		w.dtp.Faults().Injected(dtptest.EndpointReferral), w.dtp.Faults().Injected(dtptest.EndpointDecision))
	w.stop()
	if n := len(w.dtp.Received()); n != 0 {
		t.Fatalf("DTP is down yet received %d messages", n)
	}

	var silent []string // queued exchanges that do not say why
	nQueued := 0
	t.Run("queued and visible while down", func(t *testing.T) {
		ex := w.exchanges(ctx)
		nQueued = queued(ex)
		want := map[refbridge.Flow]int{}
		for _, p := range tr.ivs {
			want[refbridge.FlowIntervention]++
			if p.decision != "" {
				want[refbridge.FlowServiceDecision]++
			}
		}
		want[refbridge.FlowReferral] = len(tr.referrals())
		for _, f := range refbridge.Flows() {
			if len(ex[f]) != want[f] {
				t.Errorf("%s: %d exchanges listed, want %d", f, len(ex[f]), want[f])
			}
			for key, e := range ex[f] {
				switch e.State {
				case refbridge.StateReceived, refbridge.StateMapped, refbridge.StateDelivered, refbridge.StateRejected:
				default:
					t.Errorf("%s %s is %s (%s) while DTP is down, want it queued", f, key, e.State, e.Reason)
				}
				switch {
				case e.Attempts == 0 && e.LastError == "":
					silent = append(silent, string(f)+" "+key+" "+string(e.State))
				case e.LastError != refbridge.ETransient:
					t.Errorf("%s %s: last error %q after %d attempts, want transient", f, key, e.LastError, e.Attempts)
				}
			}
		}
		t.Logf("%d exchanges queued; %d say why (last error transient), %d do not",
			queued(ex), queued(ex)-len(silent), len(silent))
	})

	// Every queued exchange says why it waits, also those refused by the
	// engine's open circuit breaker.
	t.Run("every queued exchange says why", func(t *testing.T) {
		if len(silent) > 0 {
			t.Errorf("%d of %d exchanges queued while DTP is down do not say why (no last error), e.g. %s", len(silent), nQueued, silent[0])
		}
	})

	// A restart while DTP is still down, then DTP comes back while the
	// bridge runs: it must recover by itself.
	w.start()
	w.waitHealthy(30 * time.Second)
	sleep(ctx, 2*time.Second)
	back := time.Now()
	w.dtp.Faults().Clear()
	ok, why := waitUntil(ctx, 250*time.Millisecond, func() (bool, string) { return tr.complete(tr.observe()) })
	if !ok {
		t.Fatalf("not delivered after DTP came back: %s", why)
	}
	t.Logf("everything delivered %s after DTP came back; bridge log: %v", time.Since(back).Round(time.Millisecond), w.logSummary())
	w.stop()

	t.Run("delivered exactly once when back", func(t *testing.T) {
		o := tr.observe()
		checkEffects(t, tr, o)
		if r := resendsAtDTP(o); total(r) != 0 {
			t.Errorf("re-sends at DTP without any kill: %v", r)
		}
		checkStore(t, tr, w.exchanges(ctx))
	})
}

func queued(ex map[refbridge.Flow]map[string]refbridge.Exchange) int {
	n := 0
	for _, byKey := range ex {
		n += len(byKey)
	}
	return n
}
