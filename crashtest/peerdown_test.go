package crashtest

import (
	"context"
	"testing"
	"time"

	"refbridge"
	"refbridge/fault"
)

// TestPeerDownForTheWholeRun keeps one peer down (every call 503) while
// traffic arrives: every exchange that owes the peer something must stay
// queued and visible in the store with its last error transient, none
// dead-lettered, none lost; when the peer comes back, while the bridge
// runs, each message reaches it exactly once.
//
// DTP down: interventions, referrals and case workers' decisions all wait
// for DTP. Primero down (with -crash.full only: it waits out River's
// retry backoff of the poll, minutes): interventions wait to be filed, and
// referrals made meanwhile are found once Primero answers again.
func TestPeerDownForTheWholeRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		full bool // only with -crash.full
		// faults returns the injector of the peer that is down.
		faults func(w *world) *fault.Injector
		// decisions: case workers decide on services from proGres (they
		// need the services in Primero).
		decisions bool
		// queued: the flows whose exchanges wait while it is down.
		queued []refbridge.Flow
		// outage is how long it stays down after the traffic was sent.
		outage time.Duration
	}{
		{name: "dtp", faults: func(w *world) *fault.Injector { return w.dtp.Faults() }, decisions: true,
			queued: []refbridge.Flow{refbridge.FlowIntervention, refbridge.FlowServiceDecision, refbridge.FlowReferral},
			outage: 3 * time.Second},
		{name: "primero", full: true, faults: func(w *world) *fault.Injector { return w.primero.Faults() },
			queued: []refbridge.Flow{refbridge.FlowIntervention}, outage: 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.full && !*fullSize {
				t.Skip("runs with -crash.full: recovery waits out River's retry backoff of the poll")
			}
			t.Parallel()
			peerDown(t, tc.name, tc.faults, tc.decisions, tc.queued, tc.outage)
		})
	}
}

func peerDown(t *testing.T, peer string, faults func(w *world) *fault.Injector, decisions bool, queuedFlows []refbridge.Flow, outage time.Duration) {
	t.Helper()
	s := seed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	if *fullSize {
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Minute)
	}
	defer cancel()
	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 8, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second})
	down := faults(w)
	down.Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{503}})
	tr := newTraffic(w, 60, s, 2*time.Second)
	tr.noUNHCRDecisions = true // UNHCR cannot decide on referrals it never got
	if !decisions {
		for _, p := range tr.ivs {
			p.decision = ""
		}
	}
	w.start()
	tr.run(ctx)
	for _, err := range tr.errors() {
		t.Fatal(err)
	}
	// Every exchange has had time to try the peer (or be refused by the
	// open circuit) while it answered nothing but 503.
	if ok, _ := waitUntil(ctx, 100*time.Millisecond, func() (bool, string) { return down.Injected("*") > 0, "" }); !ok {
		t.Fatal("the bridge never called the peer")
	}
	sleep(ctx, outage)
	t.Logf("the peer refused %d calls", down.Injected("*"))
	w.stop()
	if n := len(w.dtp.Received()); n != 0 && peer == "dtp" {
		t.Fatalf("DTP is down yet received %d messages", n)
	}

	var silent []string // queued exchanges that do not say why
	nQueued := 0
	t.Run("queued and visible while down", func(t *testing.T) {
		ex := w.exchanges(ctx)
		want := map[refbridge.Flow]int{}
		for _, p := range tr.ivs {
			want[refbridge.FlowIntervention]++
			if p.decision != "" {
				want[refbridge.FlowServiceDecision]++
			}
		}
		want[refbridge.FlowReferral] = len(tr.referrals())
		for _, f := range queuedFlows {
			if len(ex[f]) != want[f] {
				t.Errorf("%s: %d exchanges listed, want %d", f, len(ex[f]), want[f])
			}
			for key, e := range ex[f] {
				if fin := tr.finalState(f, key); fin.state == refbridge.StateFailed && peer != "dtp" {
					continue // refused input owes only DTP its failure callback
				}
				nQueued++
				switch e.State {
				case refbridge.StateReceived, refbridge.StateMapped, refbridge.StateDelivered, refbridge.StateRejected:
				default:
					t.Errorf("%s %s is %s (%s) while the peer is down, want it queued", f, key, e.State, e.Reason)
				}
				switch {
				case e.Attempts == 0 && e.LastError == "":
					silent = append(silent, string(f)+" "+key+" "+string(e.State))
				case e.LastError != refbridge.ETransient:
					t.Errorf("%s %s: last error %q after %d attempts, want transient", f, key, e.LastError, e.Attempts)
				}
			}
		}
		t.Logf("%d exchanges queued; %d say why (last error transient), %d do not", nQueued, nQueued-len(silent), len(silent))
	})

	// Every queued exchange says why it waits, also those refused by the
	// engine's open circuit breaker.
	t.Run("every queued exchange says why", func(t *testing.T) {
		if len(silent) > 0 {
			t.Errorf("%d of %d exchanges queued while the peer is down do not say why (no last error), e.g. %s", len(silent), nQueued, silent[0])
		}
	})

	// A restart while the peer is still down, then it comes back while the
	// bridge runs: the bridge must recover by itself.
	w.start()
	w.waitHealthy(30 * time.Second)
	sleep(ctx, 2*time.Second)
	back := time.Now()
	down.Clear()
	ok, why := waitUntil(ctx, 250*time.Millisecond, func() (bool, string) { return tr.complete(tr.observe()) })
	if !ok {
		t.Fatalf("not delivered after the peer came back: %s", why)
	}
	t.Logf("everything delivered %s after the peer came back; bridge log: %v", time.Since(back).Round(time.Millisecond), w.logSummary())
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
