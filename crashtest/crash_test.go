package crashtest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
)

// crashSize is one size of the crash suite.
type crashSize struct {
	referrals      int           // across the four flows
	kills          int           // SIGKILLs while traffic flows
	minGap, maxGap time.Duration // uptime between a start and the next kill
	pace           time.Duration // how long the traffic takes to send
	budget         time.Duration // the whole run, settling included
}

var (
	reducedSize = crashSize{referrals: 300, kills: 20, minGap: 150 * time.Millisecond, maxGap: 1200 * time.Millisecond,
		pace: 12 * time.Second, budget: 100 * time.Second}
	fullCrashSize = crashSize{referrals: 5000, kills: 40, minGap: 500 * time.Millisecond, maxGap: 5 * time.Second,
		pace: 90 * time.Second, budget: 40 * time.Minute}
)

// peerFaults is the fault mix both simulators inject during the run: 20 %
// errors (500, 502, 503, 429 with Retry-After), 2 % hangs that end before
// the bridge's 2 s client timeout, and answers lost after the peer acted:
// 2 % reset connections and 2 % bodies trickled over 0.75–3 s (about half
// outlast the timeout).
var peerFaults = fault.Rule{ErrorRate: .2, Statuses: []int{500, 502, 503, 429}, RetryAfter: time.Second,
	HangRate: .02, HangFor: 1500 * time.Millisecond, ResetRate: .02, SlowBodyRate: .02, SlowBodyFor: 3 * time.Second}

func seed(t *testing.T) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash.seed %d)", s, s)
	return s
}

// TestCrashRestartExactlyOnce runs referrals across the four flows through
// `refbridge serve` while it is SIGKILLed at random moments and restarted on
// the same store, with both peers failing a quarter of calls (peerFaults).
// It asserts, from the simulators' state, that every intervention became
// exactly one Primero service and exactly one callback at DTP, every
// referral exactly one DTP referral, every decision exactly one effect, that
// re-sends at DTP are at most the kills plus the answers lost after DTP
// acted (checkResends), and, from the store, that no exchange is left moving: only
// referrals still awaiting UNHCR's decision are not terminal. Then no
// personal data may remain in the SQLite files nor in the bridge's logs.
func TestCrashRestartExactlyOnce(t *testing.T) {
	t.Parallel()
	size := reducedSize
	if *fullSize {
		size = fullCrashSize
	}
	s := seed(t)
	rng := rand.New(rand.NewPCG(s, 0x6b696c6c))
	ctx, cancel := context.WithTimeout(context.Background(), size.budget)
	defer cancel()

	w := newWorld(t, worldConfig{Seed: s, PollInterval: time.Second, PollOverlap: time.Minute, Workers: 16, MaxAttempts: 100,
		PeerTimeout: 2 * time.Second})
	w.primero.Faults().Set("*", peerFaults)
	w.dtp.Faults().Set("*", peerFaults)
	tr := newTraffic(w, size.referrals, s, size.pace)
	w.start()
	start := time.Now()

	// Traffic flows in the background; the kills happen meanwhile.
	trafficDone := make(chan struct{})
	go func() { defer close(trafficDone); tr.run(ctx) }()

	ciphertexts := map[string][]byte{}
	for k := 1; k <= size.kills; k++ {
		gap := size.minGap + time.Duration(rng.Int64N(int64(size.maxGap-size.minGap)))
		sleep(ctx, gap)
		if ctx.Err() != nil {
			t.Fatalf("budget spent after %d kills", k-1)
		}
		w.kill()
		if k == size.kills/3 || k == 2*size.kills/3 {
			// While it is down, note the ciphertexts of the payloads at
			// rest: once their exchanges end, not one may remain. Two
			// moments, so that some of them surely belong to exchanges
			// that end before the run does.
			maps.Copy(ciphertexts, captureCiphertexts(t, w))
		}
		w.start()
	}
	killPhase := time.Since(start)
	awaitTraffic(ctx, t, tr, trafficDone)

	// Faults cleared, the bridge running: wait until every effect shows.
	primeroFaults, dtpFaults := w.primero.Faults().Injected("*"), w.dtp.Faults().Injected("*")
	dtpLost := w.dtp.Faults().AfterEffect()
	w.primero.Faults().Clear()
	w.dtp.Faults().Clear()
	settle(ctx, t, w, tr)
	exchanges := w.exchanges(ctx)
	o := tr.observe()

	posts, redeliveries, outcomes := tr.send.stats()
	resends := resendsAtDTP(o)
	t.Logf("%d referrals (F1 %d, F2 %d, F1d %d, F2d %d) in %s; %d kills during %s, %d starts; faults injected: primero %d, dtp %d (%d answers lost after DTP acted); "+
		"DTP posts %d, re-delivered %d (outcomes %v); re-sends at DTP %d %v",
		len(tr.ivs)+len(tr.refs)+tr.f1d+tr.f2d, len(tr.ivs), len(tr.refs), tr.f1d, tr.f2d, time.Since(start).Round(time.Millisecond),
		w.kills, killPhase.Round(time.Millisecond), w.starts, primeroFaults, dtpFaults, dtpLost, posts, redeliveries, outcomes, total(resends), resends)
	t.Logf("bridge log: %v", w.logSummary())
	if w.kills < size.kills {
		t.Errorf("%d kills, want at least %d", w.kills, size.kills)
	}

	t.Run("effects exactly once", func(t *testing.T) { checkEffects(t, tr, o) })
	t.Run("re-sends only where an answer was lost", func(t *testing.T) { checkResends(t, resends, w.kills, dtpLost) })
	t.Run("no exchange left moving", func(t *testing.T) { checkStore(t, tr, exchanges) })
	t.Run("a referral's exchange ends with its decision", func(t *testing.T) {
		stuck := undecidedReferrals(exchanges, w.killTimes())
		if len(stuck) > 0 {
			var lines []string
			for _, s := range stuck {
				lines = append(lines, s.String())
			}
			t.Errorf("referrals still awaiting a decision that was applied:\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Run("no personal data at rest", func(t *testing.T) { checkNoPersonalData(ctx, t, w, tr, exchanges, ciphertexts) })
}

// settle waits until the simulators show every effect, then stops the
// bridge and looks in the store; while some exchange is still moving (an
// invalid decision not yet failed, say) it starts the bridge again and
// waits a little more.
func settle(ctx context.Context, t *testing.T, w *world, tr *traffic) {
	t.Helper()
	w.waitHealthy(30 * time.Second)
	ok, why := waitUntil(ctx, 250*time.Millisecond, func() (bool, string) { return tr.complete(tr.observe()) })
	if !ok {
		t.Fatalf("effects still missing when the budget ran out: %s; bridge log tail:\n%s", why, w.logTail(30))
	}
	if w.cfg.Postgres != "" {
		// Replicas share the store, so read it while they run: the job of a
		// killed replica finishes once River's rescuer hands it on (after
		// twice the job timeout).
		ok, why := waitUntil(ctx, time.Second, func() (bool, string) {
			moving := movingExchanges(tr, w.exchanges(ctx))
			if len(moving) == 0 {
				return true, ""
			}
			return false, fmt.Sprintf("%d exchanges still moving, e.g. %s", len(moving), moving[0])
		})
		if !ok {
			t.Logf("settle: %s", why) // checkStore reports them
		}
		w.stop()
		return
	}
	for round := 1; ; round++ {
		w.stop()
		moving := movingExchanges(tr, w.exchanges(ctx))
		if len(moving) == 0 {
			return
		}
		if round == 5 || ctx.Err() != nil {
			return // checkStore reports them
		}
		t.Logf("settle round %d: %d exchanges still moving, e.g. %s", round, len(moving), moving[0])
		w.start()
		sleep(ctx, 2*time.Second)
	}
}

// movingExchanges describes the exchanges not in the state they end in,
// except referrals undecidedReferrals reports (their own subtest says more).
func movingExchanges(tr *traffic, ex map[refbridge.Flow]map[string]refbridge.Exchange) []string {
	var out []string
	stuck := map[string]bool{}
	for _, s := range undecidedReferrals(ex, nil) {
		stuck[s.org] = true
	}
	for flow, byKey := range ex {
		for key, e := range byKey {
			if flow == refbridge.FlowReferral && stuck[key] {
				continue
			}
			want := tr.finalState(flow, key)
			if e.State != want.state || (want.reason != "" && e.Reason != want.reason) || (want.problems && len(e.Problems) == 0) {
				out = append(out, string(flow)+" "+key+" "+string(e.State)+"/"+e.Reason+" (last error "+string(e.LastError)+")")
			}
		}
	}
	sort.Strings(out)
	return out
}

// stuckReferral is an F2 exchange still awaiting UNHCR's decision although
// the decision's own exchange (F2d) is done and Primero shows it.
type stuckReferral struct {
	org                string
	decidedAt, killAt  time.Time
	referralLastChange time.Time
}

// String says what the timestamps point to: the referral's exchange moving
// on after its decision ended it, or a kill right after the decision.
func (s stuckReferral) String() string {
	cause := "no kill within 5 s after"
	switch {
	case s.referralLastChange.After(s.decidedAt):
		cause = "the referral's exchange moved to awaiting_decision after its decision was applied"
	case !s.killAt.IsZero():
		cause = fmt.Sprintf("SIGKILL %s after the decision's commit, before the referral's", s.killAt.Sub(s.decidedAt).Round(time.Millisecond))
	}
	return fmt.Sprintf("F2 %s awaiting_decision (last change %s), its F2d done at %s: %s",
		s.org, s.referralLastChange.Format("15:04:05.000"), s.decidedAt.Format("15:04:05.000"), cause)
}

// undecidedReferrals finds the F2 exchanges left delivered/awaiting_decision
// whose F2d exchange is done, each with the first kill after the F2d ended.
func undecidedReferrals(ex map[refbridge.Flow]map[string]refbridge.Exchange, kills []time.Time) []stuckReferral {
	var out []stuckReferral
	for org, d := range ex[refbridge.FlowReferralDecision] {
		r, ok := ex[refbridge.FlowReferral][org]
		if !ok || d.State != refbridge.StateDone || r.State != refbridge.StateDelivered {
			continue
		}
		s := stuckReferral{org: org, decidedAt: d.UpdatedAt, referralLastChange: r.UpdatedAt}
		for _, k := range kills {
			if !k.Before(d.UpdatedAt) && k.Sub(d.UpdatedAt) < 5*time.Second {
				s.killAt = k
				break
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].org < out[j].org })
	return out
}

// final is where an exchange must rest: its state, the reason code when
// one is required, and whether it must carry the problems that refused it.
type final struct {
	state    refbridge.ExchangeState
	reason   string
	problems bool
}

// finalState is where an exchange of the traffic must rest; unknown keys
// must not exist, so they get an impossible state.
func (tr *traffic) finalState(flow refbridge.Flow, key string) final {
	switch flow {
	case refbridge.FlowIntervention:
		for _, p := range tr.ivs {
			if p.number == key {
				if p.valid {
					return final{state: refbridge.StateDone}
				}
				return final{state: refbridge.StateFailed, problems: true}
			}
		}
	case refbridge.FlowServiceDecision:
		for _, p := range tr.ivs {
			if p.decision != "" && p.number+"#"+p.decision == key {
				return final{state: refbridge.StateDone}
			}
		}
	case refbridge.FlowReferral:
		if r := tr.byOrgGet(key); r.org != "" {
			if r.validDecision() {
				return final{state: refbridge.StateDone}
			}
			return final{state: refbridge.StateDelivered, reason: "awaiting_decision"}
		}
	case refbridge.FlowReferralDecision:
		if r := tr.byOrgGet(key); r.org != "" && r.decision != "" {
			if r.validDecision() {
				return final{state: refbridge.StateDone}
			}
			return final{state: refbridge.StateFailed, problems: true}
		}
	}
	return final{state: "unexpected exchange"}
}

// checkEffects compares the simulators' state with what the traffic sent:
// each effect exactly once (a re-send of the same message to DTP is counted
// apart, by resendsAtDTP).
func checkEffects(t *testing.T, tr *traffic, o observed) {
	t.Helper()
	individuals := map[string]bool{}
	for _, p := range tr.ivs {
		want := 1
		pending, other := refbridge.StatusPendingAcknowledgement, refbridge.StatusDeliveryFail
		if !p.valid {
			want = 0
			pending, other = other, pending
		} else {
			individuals[p.individual] = true
		}
		if n := o.services[p.number]; n != want {
			t.Errorf("F1 %s: %d services in Primero, want %d", p.number, n, want)
		}
		if n := o.statuses[dtptest.StatusKey{InterventionNumber: p.number, Status: pending}]; n < 1 {
			t.Errorf("F1 %s: no %q callback at DTP", p.number, pending)
		}
		if n := o.statuses[dtptest.StatusKey{InterventionNumber: p.number, Status: other}]; n != 0 {
			t.Errorf("F1 %s: %d %q callbacks at DTP, want none", p.number, n, other)
		}
		for _, d := range []string{"accepted", "rejected"} {
			n := o.statuses[dtptest.StatusKey{InterventionNumber: p.number, Status: f1dStatus(d)}]
			switch {
			case d == p.decision && n < 1:
				t.Errorf("F1d %s: %q never reached DTP", p.number, f1dStatus(d))
			case d != p.decision && n != 0:
				t.Errorf("F1d %s: %d %q at DTP, want none", p.number, n, f1dStatus(d))
			}
		}
	}
	for ind := range individuals {
		if n := o.casesPerIndv[ind]; n != 1 {
			t.Errorf("F1: %d Primero cases for individual %s, want 1", n, ind)
		}
	}
	ours := map[string]bool{}
	for _, r := range tr.referrals() {
		ours[r.org] = true
		if o.referrals[r.org] < 1 {
			t.Errorf("F2 %s: never reached DTP", r.org)
		}
		if n := o.referralsPer[r.service]; n != 1 {
			t.Errorf("F2 %s: %d Primero referrals of the service, want 1", r.org, n)
		}
		want := ""
		switch r.decision {
		case decisionAccept:
			want = refbridge.ReferralAccepted
		case decisionReject:
			want = refbridge.ReferralRejected
		}
		if got := o.decided[r.org]; got != want {
			t.Errorf("F2d %s: Primero referral is %q, want %q", r.org, got, want)
		}
	}
	for org := range o.referrals {
		if !ours[org] {
			t.Errorf("F2: DTP received a referral %s nobody made", org)
		}
	}
	for k := range o.statuses {
		if !strings.HasPrefix(k.InterventionNumber, "CRS-26-PRTITV-") {
			t.Errorf("F1: DTP received a status for an intervention %s nobody sent", k.InterventionNumber)
		}
	}
}

// awaitTraffic waits until the traffic is all sent (done closes), failing t
// when the budget ends first or any of it could not be sent.
func awaitTraffic(ctx context.Context, t *testing.T, tr *traffic, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("traffic not sent within the budget: %v", tr.errors())
	}
	for _, err := range tr.errors() {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkResends holds re-sends at DTP to the moments the bridge could not
// know a message had arrived: a kill between DTP's answer and the commit, or
// an answer lost after DTP acted (a reset or a body outlasting the timeout).
func checkResends(t *testing.T, resends map[string]int, kills, answersLost int) {
	t.Helper()
	if n := total(resends); n > kills+answersLost {
		t.Errorf("%d re-sends at DTP for %d kills and %d answers lost after DTP acted: %v", n, kills, answersLost, resends)
	}
}

// resendsAtDTP counts, per DTP message kind, the messages DTP accepted more
// than once for one natural key: receipts − 1 per key. dtptest counts every
// receipt; a receipt beyond the first is a re-send, the effect is one.
func resendsAtDTP(o observed) map[string]int {
	out := map[string]int{}
	for _, n := range o.referrals {
		out["referral"] += max(0, n-1)
	}
	for k, n := range o.statuses {
		out["status "+k.Status] += max(0, n-1)
	}
	for k, n := range out {
		if n == 0 {
			delete(out, k)
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkStore asserts every exchange rests where its flow ends: terminal,
// payload purged, or a referral awaiting UNHCR's decision; and that there
// is exactly one exchange per message sent.
func checkStore(t *testing.T, tr *traffic, ex map[refbridge.Flow]map[string]refbridge.Exchange) {
	t.Helper()
	for _, m := range movingExchanges(tr, ex) {
		t.Errorf("exchange not where its flow ends: %s", m)
	}
	want := map[refbridge.Flow]int{}
	for _, p := range tr.ivs {
		want[refbridge.FlowIntervention]++
		if p.decision != "" {
			want[refbridge.FlowServiceDecision]++
		}
	}
	for _, r := range tr.referrals() {
		want[refbridge.FlowReferral]++
		if r.decision != "" {
			want[refbridge.FlowReferralDecision]++
		}
	}
	for _, f := range refbridge.Flows() {
		if got := len(ex[f]); got != want[f] {
			t.Errorf("%s: %d exchanges in the store, want %d", f, got, want[f])
		}
		for key, e := range ex[f] {
			if e.State.Terminal() && e.PurgedAt.IsZero() {
				t.Errorf("%s %s is %s but its payload was not purged", f, key, e.State)
			}
		}
	}
}
