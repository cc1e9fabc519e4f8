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

	"github.com/google/uuid"

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
	fuzzBatchRoute(f, RouteInterventions)
}

// fuzzBatchRoute fuzzes one of DTP's batch routes: each body is posted
// twice and both answers, and what each post changed, are checked.
func fuzzBatchRoute(f *testing.F, route string) {
	// One server and one store per fuzz worker (opening a store per input
	// would cost more than the input): inputs see what earlier ones stored,
	// so each post is checked against what it changed, found by the store's
	// clock (see storeClock.mark).
	db := newStore(f)
	h := newHarness(f, db, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	f.Fuzz(func(t *testing.T, body []byte) {
		h.reset()
		before := db.clock.mark()
		first := h.postDTP(t, route, body, tokenA)
		checkFuzzAnswer(t, db, body, first, before)
		again := db.clock.mark()
		second := h.postDTP(t, route, body, tokenA)
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

// FuzzDecisionsHandler is FuzzInterventionsHandler for UNHCR's decisions
// on referrals (F2d).
func FuzzDecisionsHandler(f *testing.F) {
	f.Add([]byte(`{"interventions":[{"progres_orgreferralid":"c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f","progres_reviewdecision":"125080000","progres_reviewdate":"2024-05-09T00:00:00Z"}],"request_type":"PrimeroIncomingReferralDecision"}`))
	f.Add([]byte(`{"interventions":[{"progres_orgreferralid":"c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f","progres_reviewdecision":"125080001"},{"progres_orgreferralid":"c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f","progres_reviewdecision":"125080000"}]}`))
	f.Add([]byte(`{"interventions":[{"progres_orgreferralid":"x","progres_reviewdecision":"1"},{"progres_orgreferralid":null},{"progres_orgreferralid":"\u0000"}],"request_type":"PrimeroIncomingReferralDecision"}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N-1"}],"request_type":"PrimeroOutgoingReferral"}`))
	f.Add([]byte(`{"interventions":[],"request_type":"PrimeroIncomingReferralDecision","request_type":"x"}`))
	fuzzBatchRoute(f, RouteDecisions)
}

// FuzzInboxHandler fuzzes the route that takes either kind of batch by its
// request_type.
func FuzzInboxHandler(f *testing.F) {
	f.Add([]byte(`{"interventions":[{"progres_orgreferralid":"c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f","progres_reviewdecision":"125080000"}],"request_type":"PrimeroIncomingReferralDecision"}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N-1","individuals.progres_familyname":"A","interventiontype.progres_description":"BID"}],"request_type":"PrimeroOutgoingReferral"}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N-1"}]}`))
	f.Add([]byte(`{"interventions":[{"progres_interventionnumber":"N-1"}],"request_type":"primerooutgoingreferral"}`))
	fuzzBatchRoute(f, RouteInbox)
}

// FuzzWebhookHandler posts arbitrary bodies as Primero's webhook. Whatever
// the body: no 5xx, a 202 triggers exactly the one case id the body names
// (a UUID), any other answer triggers nothing and says what was wrong,
// nothing is stored, and neither the answer nor the log repeats a value of
// the body other than that id and Primero's record-type codes.
func FuzzWebhookHandler(f *testing.F) {
	f.Add(webhookBody(f, "case", caseID))
	f.Add(webhookBody(f, "incident", caseID))
	f.Add([]byte(`{"data":{"record_type":"case","record_id":"` + caseID + `","record_id":"` + caseID + `"}}`))
	f.Add([]byte(`{"data":{"record_type":"case","record_id":"Testchild"}}`))
	f.Add([]byte(`{"data":{"record_type":"case","record_id":42,"x":[[[[[[[[]]]]]]]]}}`))
	f.Add([]byte("{\"data\":{\"record_type\":\"case\",\"record_id\":\"\xff\"}}"))
	db := newStore(f)
	h := newHarness(f, db, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	f.Fuzz(func(t *testing.T, body []byte) {
		h.reset()
		r := h.do(t, http.MethodPost, RoutePrimeroWebhook, body, "Content-Type", "application/json", "X-Api-Key", webhookKey)
		got := h.trigger.got()
		switch {
		case r.status >= 500:
			t.Fatalf("status %d: %s", r.status, r.body)
		case r.status == http.StatusAccepted:
			if len(got) != 1 || uuid.Validate(got[0]) != nil || !bytes.Contains(bytes.ToLower(body), []byte(strings.ToLower(got[0]))) {
				t.Fatalf("202 triggered %q", got)
			}
		default:
			if len(got) != 0 {
				t.Fatalf("a refused webhook (%d) triggered %q", r.status, got)
			}
			errorAnswer(t, r)
		}
		if all := db.all(t); len(all) != 0 {
			t.Fatalf("a webhook stored %d exchanges", len(all))
		}
		for _, v := range bodyStrings(body) {
			switch {
			case len(v) < 6: // short values occur in any answer by chance
				continue
			case len(got) == 1 && strings.EqualFold(v, got[0]), slices.Contains(primeroRecordTypes(), v):
				continue // the case id, and Primero's own codes, may be named
			}
			if bytes.Contains(r.body, []byte(v)) || strings.Contains(h.logs.String(), v) {
				t.Fatalf("the answer or the log repeats a value of the body: %q", v)
			}
		}
	})
}

// bodyStrings returns the string values anywhere in a JSON body, as far as
// it parses.
func bodyStrings(body []byte) []string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return out
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
		ex, err := db.GetByKey(context.Background(), requestFlow[resp.RequestType], res.Key)
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

// dtpFlows are the flows whose items DTP posts: a post may change only these.
var dtpFlows = []refbridge.Flow{refbridge.FlowIntervention, refbridge.FlowReferralDecision}

// requestFlow is the flow a batch's request_type stores its items under.
var requestFlow = map[string]refbridge.Flow{f1: refbridge.FlowIntervention, f2d: refbridge.FlowReferralDecision}

// changedSince returns, with their payloads, the exchanges of DTP's flows
// written at or after since: those created since, and those under keys
// updated since.
func changedSince(t *testing.T, db *testStore, keys []string, since time.Time) []refbridge.Exchange {
	t.Helper()
	var changed []refbridge.Exchange
	for _, flow := range dtpFlows {
		keys := slices.Clone(keys)
		for _, ex := range db.list(t, store.Filter{Flow: flow, Since: since}) {
			keys = append(keys, ex.Key)
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			ex, err := db.GetByKey(context.Background(), flow, k)
			switch {
			case refbridge.ErrorCodeOf(err) == refbridge.ENotFound:
			case err != nil:
				t.Fatalf("store: %q: %v", k, err)
			case !ex.UpdatedAt.Before(since):
				changed = append(changed, ex)
			}
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

// bodyKeys reads the keys of a body's items (intervention numbers, or the
// referral ids decisions answer), as far as the body can be read, trimmed as
// the handler trims them: the keys under which a post of it could have
// changed something already stored.
func bodyKeys(body []byte) []string {
	var top struct {
		Interventions []json.RawMessage `json:"interventions"`
	}
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	var keys []string
	for _, raw := range top.Interventions {
		for _, field := range []string{"progres_interventionnumber", "progres_orgreferralid"} {
			if k := lenientKey(raw, field); k != "" {
				keys = append(keys, k)
			}
		}
	}
	return keys
}
