package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/store"
)

// FuzzInterventionsHandler posts arbitrary bodies to the F1 route, twice,
// through the real store and the Gambella validator. Whatever the body: no
// panic, no 5xx (a store that refuses what the handler hands it, e.g. a
// blank key, surfaces as one), nothing stored without a usable key, no key
// handed over twice in one call, every item stored in contract (JSON
// payload, rejected exactly when it has problems), a refused body stores
// nothing, a 200 answer accounts for every item, and the second post of
// the same body is never accepted or updated again and changes nothing.
func FuzzInterventionsHandler(f *testing.F) {
	// Small seeds: the mutator and the minimizer work byte by byte, and the
	// 9 KB interventions fixture made one minimization take the whole run.
	f.Add([]byte(`{"__query_params":{},"interventions":[{"progres_interventionnumber":"TST-24-PRTITV-0000001","individuals.progres_familyname":"F","individuals.progres_registrationgroupid":{"Id":"00000000-0000-4000-8000-00000000a001","KeyAttributes":[],"LogicalName":"progres_registrationgroup","Name":"TST-24-00001","RowVersion":null},"interventiontype.progres_description":"Alternative Care","languages.progres_languagecodeid":{"Name":"Nuer"},"spncategory2code":"SC"}],"request_type":"PrimeroOutgoingReferral"}`))
	f.Add([]byte(`{"interventions":[{"progres_orgreferralid":"c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f","progres_reviewdecision":"125080000"}],"request_type":"PrimeroIncomingReferralDecision"}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N-1","individuals.progres_familyname":"A","interventiontype.progres_description":"BID"},{"progres_interventionnumber":"N-1","individuals.progres_familyname":"A","interventiontype.progres_description":"BID","languages.progres_languagecodeid":{"Name":"Nuer"}},{"progres_interventionnumber":"N-1","individuals.progres_familyname":"B"}]}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":" N "},{"progres_interventionnumber":"N"},{"foo":1,"progres_interventionnumber":"N"},null,7,"x",[]],"request_type":"PrimeroOutgoingReferral","__query_params":{}}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N","progres_interventionnumber":"M"}]}`))
	f.Add([]byte(`{"interventions":[{"user.progres_partner":{"Name":"P","KeyAttributes":[{"b":1,"a":2}]},"progres_interventionnumber":"\u004e"}]}`))
	f.Add([]byte(`{"interventions":[]} `))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N\u0000"}]}`))
	f.Add([]byte("{\"interventions\":[{\"progres_interventionnumber\":\"\xff\"}]}"))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`))
	// One server and one store per fuzz worker (opening a store per input
	// would cost more than the input): inputs see what earlier ones stored,
	// so each post is checked against what it changed, found by the store's
	// clock (see storeClock.mark).
	db := newStore(f)
	h := newHarness(f, db, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	f.Fuzz(func(t *testing.T, body []byte) {
		h.reset()
		before := db.clock.mark()
		first := h.postDTP(t, RouteInterventions, body, tokenA)
		checkFuzzAnswer(t, db, body, first, before)
		again := db.clock.mark()
		second := h.postDTP(t, RouteInterventions, body, tokenA)
		checkFuzzAnswer(t, db, body, second, again)
		if first.status != second.status {
			t.Fatalf("the same body got %d then %d", first.status, second.status)
		}
		if second.status == http.StatusOK {
			resp := batchAnswer(t, second)
			if resp.Accepted != 0 || resp.Updated != 0 {
				t.Fatalf("a re-post was processed again: %+v", resp.counts)
			}
			if changed := changedSince(t, db, resultKeys(resp), again); len(changed) > 0 {
				t.Fatalf("a re-post changed %d stored items", len(changed))
			}
		}
		if strings.Contains(h.logs.String(), "panicked") {
			t.Fatalf("the handler panicked")
		}
	})
}

// checkFuzzAnswer checks one answer, and what the post changed in the
// store: the exchanges written at or after since.
func checkFuzzAnswer(t *testing.T, db *testStore, body []byte, r reply, since time.Time) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d: the handler failed or handed the store something it refused: %s", r.status, r.body)
	}
	if r.status != http.StatusOK {
		errorAnswer(t, r)
		if changed := changedSince(t, db, bodyKeys(body), since); len(changed) > 0 {
			t.Fatalf("a refused body stored %d items", len(changed))
		}
		return
	}
	resp := batchAnswer(t, r)
	leads := map[string]int{} // exchange id → index of the result it was stored under
	for i, res := range resp.Results {
		if res.Index != i {
			t.Fatalf("result %d has index %d", i, res.Index)
		}
		switch {
		case res.Outcome == refbridge.IntakeRejected && len(res.Problems) == 0:
			t.Fatalf("result %d rejected without a reason", i)
		case res.Outcome != refbridge.IntakeRejected && (res.ExchangeID == "" || len(res.Problems) != 0):
			t.Fatalf("result %d: %+v", i, res)
		}
		for _, p := range res.Problems {
			if p.Field == "" || p.Rule == "" || p.Detail == "" || !strings.HasPrefix(p.Field, "interventions[") {
				t.Fatalf("result %d: vague problem %+v", i, p)
			}
		}
		if res.ExchangeID == "" {
			continue
		}
		if !usableKey(res.Key) {
			t.Fatalf("result %d: stored under an unusable key %q", i, res.Key)
		}
		ex, err := db.GetByKey(context.Background(), refbridge.FlowIntervention, res.Key)
		if err != nil || ex.ID != res.ExchangeID {
			t.Fatalf("result %d names exchange %s for key %q; the store has %q (%v)", i, res.ExchangeID, res.Key, ex.ID, err)
		}
		// Rows of one intervention share its exchange: the first is stored,
		// the others fold into it. Two unfolded rows on one exchange mean
		// the key was handed to the store twice in one call.
		if res.FoldedInto == nil {
			if j, ok := leads[res.ExchangeID]; ok {
				t.Fatalf("results %d and %d were both stored as exchange %s", j, i, res.ExchangeID)
			}
			leads[res.ExchangeID] = i
		}
	}
	for i, res := range resp.Results {
		if res.FoldedInto != nil {
			if j, ok := leads[res.ExchangeID]; !ok || j != *res.FoldedInto {
				t.Fatalf("result %d folds into %d, which was not stored as exchange %s", i, *res.FoldedInto, res.ExchangeID)
			}
		}
	}
	named := resultKeys(resp)
	for _, ex := range changedSince(t, db, named, since) {
		switch {
		case !slices.Contains(named, ex.Key):
			t.Fatalf("stored key %q that no result names", ex.Key)
		case !usableKey(ex.Key):
			t.Fatalf("stored an item without a usable key: %q", ex.Key)
		case !json.Valid(ex.Payload):
			t.Fatalf("stored %q with a payload that is not JSON", ex.Key)
		case ex.State != refbridge.StateReceived && ex.State != refbridge.StateRejected:
			t.Fatalf("stored %q as %s", ex.Key, ex.State)
		case (ex.State == refbridge.StateRejected) != (len(ex.Problems) > 0):
			t.Fatalf("stored %q as %s with %d problems", ex.Key, ex.State, len(ex.Problems))
		}
	}
	var top struct {
		Interventions []json.RawMessage `json:"interventions"`
	}
	if json.Unmarshal(body, &top) == nil && len(top.Interventions) != resp.Received {
		t.Fatalf("received %d, the body has %d items", resp.Received, len(top.Interventions))
	}
	if bytes.Contains(r.body, []byte(`"outcome":""`)) {
		t.Fatalf("empty outcome in %s", r.body)
	}
}

// usableKey reports whether a stored key can be echoed and correlated.
func usableKey(k string) bool { return k == strings.TrimSpace(k) && validKey(k) }

// changedSince returns, with their payloads, the exchanges written at or
// after since: those created since, and those under keys updated since.
func changedSince(t *testing.T, db *testStore, keys []string, since time.Time) []refbridge.Exchange {
	t.Helper()
	keys = slices.Clone(keys)
	for _, ex := range db.list(t, store.Filter{Flow: refbridge.FlowIntervention, Since: since}) {
		keys = append(keys, ex.Key)
	}
	slices.Sort(keys)
	var changed []refbridge.Exchange
	for _, k := range slices.Compact(keys) {
		ex, err := db.GetByKey(context.Background(), refbridge.FlowIntervention, k)
		switch {
		case refbridge.ErrorCodeOf(err) == refbridge.ENotFound:
		case err != nil:
			t.Fatalf("store: %q: %v", k, err)
		case !ex.UpdatedAt.Before(since):
			changed = append(changed, ex)
		}
	}
	return changed
}

// resultKeys are the keys a batch answer says were stored.
func resultKeys(resp batchResponse) []string {
	var keys []string
	for _, res := range resp.Results {
		if res.ExchangeID != "" && !slices.Contains(keys, res.Key) {
			keys = append(keys, res.Key)
		}
	}
	return keys
}

// bodyKeys reads the intervention numbers of a body's items, as far as the
// body can be read, trimmed as the handler trims them: the keys under which
// a post of it could have changed something already stored.
func bodyKeys(body []byte) []string {
	var top struct {
		Interventions []json.RawMessage `json:"interventions"`
	}
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	var keys []string
	for _, raw := range top.Interventions {
		if k := lenientKey(raw, "progres_interventionnumber"); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}
