package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"refbridge"
)

// FuzzInterventionsHandler posts arbitrary bodies to the F1 route, twice.
// Whatever the body: no panic, no 5xx (the Inbox never fails here), the
// Inbox never gets an item without a key or a key twice in one call, a
// refused body stores nothing, a 200 answer accounts for every item, and
// the second post of the same body is never accepted or updated again.
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
	// One server per fuzz worker, with a fresh inbox per input: building a
	// server per input halved the rate, and minimization runs thousands.
	inbox := newMemInbox()
	h := newHarness(f, inbox, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	f.Fuzz(func(t *testing.T, body []byte) {
		inbox.reset()
		h.reset()
		first := h.postDTP(t, RouteInterventions, body, tokenA)
		checkFuzzAnswer(t, h, inbox, body, first)
		calls, _ := h.inbox.snapshot()
		second := h.postDTP(t, RouteInterventions, body, tokenA)
		checkFuzzAnswer(t, h, inbox, body, second)
		if first.status != second.status {
			t.Fatalf("the same body got %d then %d", first.status, second.status)
		}
		if second.status == http.StatusOK {
			resp := batchAnswer(t, second)
			if resp.Accepted != 0 || resp.Updated != 0 {
				t.Fatalf("a re-post was processed again: %+v", resp.counts)
			}
		} else if again, _ := h.inbox.snapshot(); again != calls {
			t.Fatalf("a refused body reached the inbox")
		}
		if strings.Contains(h.logs.String(), "panicked") {
			t.Fatalf("the handler panicked")
		}
	})
}

func checkFuzzAnswer(t *testing.T, h *harness, inbox *memInbox, body []byte, r reply) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d for a body that the inbox never refused: %s", r.status, r.body)
	}
	if v := inbox.contractViolations(); len(v) > 0 {
		t.Fatalf("the inbox got items out of contract: %v", v)
	}
	if r.status != http.StatusOK {
		errorAnswer(t, r)
		if calls, _ := h.inbox.snapshot(); calls != 0 && !json.Valid(body) {
			t.Fatalf("invalid JSON reached the inbox")
		}
		return
	}
	resp := batchAnswer(t, r)
	_, stored := h.inbox.snapshot()
	keys := map[string]bool{}
	for _, in := range stored {
		if strings.TrimSpace(in.Key) == "" || !validKey(in.Key) {
			t.Fatalf("stored an item without a usable key: %q", in.Key)
		}
		keys[in.Key] = true
	}
	for i, res := range resp.Results {
		if res.Index != i {
			t.Fatalf("result %d has index %d", i, res.Index)
		}
		switch {
		case res.Outcome == refbridge.IntakeRejected && len(res.Problems) == 0:
			t.Fatalf("result %d rejected without a reason", i)
		case res.Outcome != refbridge.IntakeRejected && (res.ExchangeID == "" || len(res.Problems) != 0):
			t.Fatalf("result %d: %+v", i, res)
		case res.ExchangeID != "" && !keys[res.Key]:
			t.Fatalf("result %d names exchange %s for a key never stored", i, res.ExchangeID)
		}
		for _, p := range res.Problems {
			if p.Field == "" || p.Rule == "" || p.Detail == "" || !strings.HasPrefix(p.Field, "interventions[") {
				t.Fatalf("result %d: vague problem %+v", i, p)
			}
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
