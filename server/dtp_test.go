package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
)

const (
	f1  = refbridge.RequestTypeOutgoingReferral
	f2d = refbridge.RequestTypeIncomingReferralDecision
)

// TestFixtureInterventions posts the F1 fixture: with the Gambella profile
// #0 is accepted, #1 lacks a family name and is refused with a precise
// problem yet stored as rejected (the engine sends DTP the failure
// callback), and #2's "Legal Assistance" is a Gambella alias of
// legal_support, so it is accepted. The store holds the three items from
// one Receive call. Posting again is acknowledged as a duplicate and
// changes nothing in the store.
func TestFixtureInterventions(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		body := fixture(t, "dtp-interventions-inbound.json")

		first := batchAnswer(t, h.postDTP(t, RouteInterventions, body, tokenA))
		if first.RequestType != f1 || first.Received != 3 || first.Accepted != 2 || first.Rejected != 1 {
			t.Fatalf("first post: %+v", first.counts)
		}
		wantKeys := []string{"TST-24-PRTITV-0000001", "TST-24-PRTITV-0000002", "TST-24-PRTITV-0000003"}
		wantOutcomes := []refbridge.IntakeOutcome{"accepted", "rejected", "accepted"}
		wantProblems := [][]string{nil, {"interventions[1].individuals.progres_familyname:required"}, nil}
		wantStates := []refbridge.ExchangeState{refbridge.StateReceived, refbridge.StateRejected, refbridge.StateReceived}
		if got := outcomes(first); !slices.Equal(got, wantOutcomes) {
			t.Errorf("outcomes %v, want %v", got, wantOutcomes)
		}
		for i, r := range first.Results {
			if r.Index != i || r.Key != wantKeys[i] || r.ExchangeID == "" || r.FoldedInto != nil {
				t.Errorf("result %d: %+v", i, r)
			}
			if got := rules(r.Problems); !slices.Equal(got, wantProblems[i]) {
				t.Errorf("result %d problems %v, want %v", i, got, wantProblems[i])
			}
		}

		stored := make([]refbridge.Exchange, len(wantKeys))
		for i, key := range wantKeys {
			ex := db.exchange(t, refbridge.FlowIntervention, key)
			stored[i] = ex
			if ex.ID != first.Results[i].ExchangeID {
				t.Errorf("stored %d: exchange %s, answered %s", i, ex.ID, first.Results[i].ExchangeID)
			}
			if b, err := hex.DecodeString(ex.ContentHash); err != nil || len(b) != 32 {
				t.Errorf("stored %d: hash %q is not hex SHA-256", i, ex.ContentHash)
			}
			var rows []refbridge.Intervention
			if err := json.Unmarshal(ex.Payload, &rows); err != nil || len(rows) != 1 || rows[0].InterventionNumber != key {
				t.Errorf("stored %d: payload is not the one row (%v)", i, err)
			}
			if ex.State != wantStates[i] || (len(ex.Problems) > 0) != (wantStates[i] == refbridge.StateRejected) {
				t.Errorf("stored %d: state %s problems %v", i, ex.State, ex.Problems)
			}
		}
		// Stored problems are relative to the item, as the DTP callback needs them.
		if got := rules(stored[1].Problems); !slices.Equal(got, []string{"individuals.progres_familyname:required"}) {
			t.Errorf("stored problems %v", got)
		}
		// One Receive call, all or nothing, stored the whole batch.
		if batch := db.createdWith(t, stored[0]); len(batch) != 3 {
			t.Errorf("the first Receive call stored %d items, want the batch's 3", len(batch))
		}

		again := batchAnswer(t, h.postDTP(t, RouteInterventions, body, tokenA))
		if got := outcomes(again); !slices.Equal(got, []refbridge.IntakeOutcome{"duplicate", "rejected", "duplicate"}) {
			t.Errorf("re-post outcomes %v", got)
		}
		if again.Duplicate != 2 || again.Rejected != 1 {
			t.Errorf("re-post counts %+v", again.counts)
		}
		for i := range again.Results {
			if again.Results[i].ExchangeID != first.Results[i].ExchangeID {
				t.Errorf("re-post %d: exchange %s, first %s", i, again.Results[i].ExchangeID, first.Results[i].ExchangeID)
			}
		}
		for i, key := range wantKeys {
			if ex := db.exchange(t, refbridge.FlowIntervention, key); !ex.UpdatedAt.Equal(stored[i].UpdatedAt) || ex.ContentHash != stored[i].ContentHash {
				t.Errorf("the re-post changed stored item %d", i)
			}
		}
		if all := db.all(t); len(all) != 3 {
			t.Errorf("the store holds %d exchanges, want 3", len(all))
		}
	})
}

// TestFixtureDecisions posts the F2d fixture twice: accepted, then duplicate.
func TestFixtureDecisions(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		body := fixture(t, "dtp-decision-inbound.json")
		first := batchAnswer(t, h.postDTP(t, RouteDecisions, body, tokenA))
		if first.RequestType != f2d || first.Accepted != 2 {
			t.Fatalf("first: %+v", first)
		}
		if first.Results[0].Key != "c0c0c0c0-0000-4000-8000-000000000001#0a1b2c3d4e5f" {
			t.Errorf("key %q", first.Results[0].Key)
		}
		again := batchAnswer(t, h.postDTP(t, RouteDecisions, body, tokenA))
		if again.Duplicate != 2 {
			t.Errorf("again: %+v", again)
		}
		ex := db.exchange(t, refbridge.FlowReferralDecision, first.Results[1].Key)
		var d refbridge.ReferralDecision
		if err := json.Unmarshal(ex.Payload, &d); err != nil || d.ReviewDecision != "125080001" || ex.ID != first.Results[1].ExchangeID || ex.State != refbridge.StateReceived {
			t.Errorf("stored decision: %v %+v (%s, %s)", err, d, ex.ID, ex.State)
		}
	})
}

// TestChangedContentIsAnUpdate: the same key with new content is an update
// of the same exchange, and a fixed item replaces a refused one.
func TestChangedContentIsAnUpdate(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		items := fixtureItems(t, "dtp-interventions-inbound.json")
		first := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, items[0], items[1]), tokenA))
		if got := outcomes(first); !slices.Equal(got, []refbridge.IntakeOutcome{"accepted", "rejected"}) {
			t.Fatalf("first outcomes %v", got)
		}
		refused := db.exchange(t, refbridge.FlowIntervention, first.Results[1].Key)

		items[0]["progres_interventionstartdate"] = "2024-05-08T00:00:00Z"
		items[1]["individuals.progres_familyname"] = "Added Later"
		second := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, items[0], items[1]), tokenA))
		if got := outcomes(second); !slices.Equal(got, []refbridge.IntakeOutcome{"updated", "updated"}) {
			t.Fatalf("outcomes %v; %+v", got, second.Results)
		}
		for i := range second.Results {
			if second.Results[i].ExchangeID != first.Results[i].ExchangeID || len(second.Results[i].Problems) != 0 {
				t.Errorf("result %d: %+v", i, second.Results[i])
			}
		}
		fixed := db.exchange(t, refbridge.FlowIntervention, first.Results[1].Key)
		if fixed.ID != refused.ID || fixed.State != refbridge.StateReceived || len(fixed.Problems) != 0 || fixed.ContentHash == refused.ContentHash {
			t.Errorf("the fixed item is stored as %s with %v (hash changed: %v)", fixed.State, fixed.Problems, fixed.ContentHash != refused.ContentHash)
		}
		// Key order and white space are not content.
		reordered := bytes.ReplaceAll(withItems(t, f1, items[1], items[0]), []byte(`,"`), []byte(",\n  \""))
		third := batchAnswer(t, h.postDTP(t, RouteInterventions, reordered, tokenA))
		if third.Duplicate != 2 {
			t.Errorf("reordered re-post: %+v", third.counts)
		}
		if all := db.all(t); len(all) != 2 {
			t.Errorf("the store holds %d exchanges, want 2", len(all))
		}
	})
}

// TestFolding: DTP sends one row per language × specific-need join; such
// rows fold into one stored intervention holding every row, in any order,
// and an exact repeat folds too. A row under the same number that cannot
// be read is refused alone as duplicate_in_batch and not stored. Rows under
// one number that differ beyond the joins cannot be told apart: the
// profile refuses the whole intervention (conflict), stored as rejected
// with every row.
func TestFolding(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		items := fixtureItems(t, "dtp-interventions-inbound.json")
		base := items[0]
		otherLanguage := clone(t, base)
		otherLanguage["languages.progres_languagecodeid"] = map[string]any{"Id": "00000000-0000-4000-8000-000000002002", "KeyAttributes": []any{}, "LogicalName": "progres_languagecode", "Name": "Anyuak", "RowVersion": nil}
		unreadable := clone(t, base)
		unreadable["foo"] = 1

		resp := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, base, otherLanguage, base, unreadable, items[2]), tokenA))
		want := []refbridge.IntakeOutcome{"accepted", "accepted", "accepted", "rejected", "accepted"}
		if got := outcomes(resp); !slices.Equal(got, want) {
			t.Fatalf("outcomes %v, want %v; %+v", got, want, resp.Results)
		}
		for _, i := range []int{1, 2} {
			if r := resp.Results[i]; r.FoldedInto == nil || *r.FoldedInto != 0 || r.ExchangeID != resp.Results[0].ExchangeID {
				t.Errorf("row %d should fold into row 0: %+v", i, r)
			}
		}
		if got := rules(resp.Results[3].Problems); !slices.Equal(got, []string{"interventions[3].foo:unknown_field", "interventions[3].progres_interventionnumber:duplicate_in_batch"}) {
			t.Errorf("row 3 problems %v", got)
		}
		if resp.Results[3].ExchangeID != "" {
			t.Errorf("a stray row must not be stored: %+v", resp.Results[3])
		}
		if all := db.all(t); len(all) != 2 {
			t.Fatalf("the store holds %d exchanges, want 2 (one per intervention number)", len(all))
		}
		folded := db.exchange(t, refbridge.FlowIntervention, resp.Results[0].Key)
		var rows []refbridge.Intervention
		if err := json.Unmarshal(folded.Payload, &rows); err != nil || len(rows) != 2 ||
			refbridge.LookupName(rows[0].Language) != "Nuer" || refbridge.LookupName(rows[1].Language) != "Anyuak" {
			t.Fatalf("stored rows: %v %d", err, len(rows))
		}
		if folded.State != refbridge.StateReceived || folded.ID != resp.Results[0].ExchangeID {
			t.Errorf("folded intervention stored as %s", folded.State)
		}

		// The same rows in another order are the same content.
		again := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, otherLanguage, base), tokenA))
		if got := outcomes(again); !slices.Equal(got, []refbridge.IntakeOutcome{"duplicate", "duplicate"}) {
			t.Errorf("reordered rows: %v", got)
		}
		// A language row dropped is new content.
		fewer := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, base), tokenA))
		if fewer.Updated != 1 {
			t.Errorf("one row fewer: %+v", fewer.Results)
		}

		// Two rows of one number that disagree beyond the joins.
		conflicting := withNumber(t, base, "TST-FOLD-CONFLICT")
		otherName := clone(t, conflicting)
		otherName["individuals.progres_middlename"] = "Different"
		conflict := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, conflicting, otherName), tokenA))
		if got := outcomes(conflict); !slices.Equal(got, []refbridge.IntakeOutcome{"rejected", "rejected"}) {
			t.Fatalf("conflicting rows: %v", got)
		}
		for i, r := range conflict.Results {
			if got := rules(r.Problems); !slices.Equal(got, []string{fmt.Sprintf("interventions[%d].individuals.progres_middlename:conflict", i)}) {
				t.Errorf("conflicting row %d problems %v", i, got)
			}
			if r.ExchangeID == "" || r.ExchangeID != conflict.Results[0].ExchangeID {
				t.Errorf("conflicting row %d: %+v", i, r)
			}
		}
		refused := db.exchange(t, refbridge.FlowIntervention, "TST-FOLD-CONFLICT")
		if err := json.Unmarshal(refused.Payload, &rows); err != nil || len(rows) != 2 || refused.State != refbridge.StateRejected ||
			!slices.Equal(rules(refused.Problems), []string{"individuals.progres_middlename:conflict"}) {
			t.Errorf("conflicting rows stored as %s with %v, %d rows (%v)", refused.State, rules(refused.Problems), len(rows), err)
		}
	})
}

// TestDecisionDuplicateInBatch: two different decisions under one org
// referral id: the first is processed, the second refused.
func TestDecisionDuplicateInBatch(t *testing.T) {
	t.Parallel()
	db := newStore(t)
	h := newHarness(t, db, nil)
	items := fixtureItems(t, "dtp-decision-inbound.json")
	flipped := clone(t, items[0])
	flipped["progres_reviewdecision"] = "125080001"
	resp := batchAnswer(t, h.postDTP(t, RouteDecisions, withItems(t, f2d, items[0], flipped, items[0]), tokenA))
	if got := outcomes(resp); !slices.Equal(got, []refbridge.IntakeOutcome{"accepted", "rejected", "accepted"}) {
		t.Fatalf("outcomes %v", got)
	}
	if got := rules(resp.Results[1].Problems); !slices.Equal(got, []string{"interventions[1].progres_orgreferralid:duplicate_in_batch"}) {
		t.Errorf("problems %v", got)
	}
	if resp.Results[2].FoldedInto == nil || *resp.Results[2].FoldedInto != 0 {
		t.Errorf("exact repeat should fold: %+v", resp.Results[2])
	}
	ex := db.exchange(t, refbridge.FlowReferralDecision, resp.Results[0].Key)
	var d refbridge.ReferralDecision
	if err := json.Unmarshal(ex.Payload, &d); err != nil || d.ReviewDecision != "125080000" {
		t.Errorf("the stored decision is not the first one: %v %q", err, d.ReviewDecision)
	}
	if all := db.all(t); len(all) != 1 {
		t.Errorf("the store holds %d exchanges, want 1", len(all))
	}
}

// TestOneBadItemDoesNotBlockOthers: each kind of bad item is refused with
// a precise problem; the good items around it are accepted. A bad item
// with a key is stored as rejected (DTP gets the failure callback); one
// without a key cannot be correlated and is answered only. The cases share
// one store: every case's items have keys of their own.
func TestOneBadItemDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	good := fixtureItems(t, "dtp-interventions-inbound.json")[0]
	withKey := func(n string, mod func(map[string]any)) map[string]any {
		it := withNumber(t, good, n)
		mod(it)
		return it
	}
	tests := []struct {
		name   string
		item   any
		want   []string // field:rule, paths in the request
		detail string   // a part of the first problem's detail, if given
		stored bool
	}{
		{"unknown key", withKey("N-1", func(m map[string]any) { m["foo"] = 1 }),
			[]string{"interventions[1].foo:unknown_field"}, "", true},
		{"unknown key in a lookup", withKey("N-2", func(m map[string]any) {
			m["user.progres_partner"] = map[string]any{"Name": "TST-17-PNR-00001", "Extra": true}
		}), []string{"interventions[1].user.progres_partner.Extra:unknown_field"}, "", true},
		{"key in other case", withKey("N-3", func(m map[string]any) { m["Progres_InterventionStartDate"] = "x" }),
			[]string{"interventions[1].Progres_InterventionStartDate:unknown_field"}, "", true},
		{"wrong type", withKey("N-4", func(m map[string]any) { m["individuals.progres_sex"] = 125080000 }),
			[]string{"interventions[1].individuals.progres_sex:type"}, "", true},
		{"lookup not an object", withKey("N-5", func(m map[string]any) { m["individuals.progres_coalocationlevel1"] = "Region" }),
			[]string{"interventions[1].individuals.progres_coalocationlevel1:type"}, "", true},
		{"key missing", withKey("", func(m map[string]any) { delete(m, "progres_interventionnumber") }),
			[]string{"interventions[1].progres_interventionnumber:required"}, "", false},
		{"key blank", withKey("   ", func(map[string]any) {}),
			[]string{"interventions[1].progres_interventionnumber:required"}, "", false},
		{"key not a string", withKey("", func(m map[string]any) { m["progres_interventionnumber"] = 7 }),
			[]string{"interventions[1].progres_interventionnumber:type", "interventions[1].progres_interventionnumber:required"}, "", false},
		{"key too long", withKey(strings.Repeat("N", 200), func(map[string]any) {}),
			[]string{"interventions[1].progres_interventionnumber:format"}, "", false},
		{"item not an object", json.RawMessage(`"TST-24-PRTITV-0000009"`),
			[]string{"interventions[1]:type", "interventions[1].progres_interventionnumber:required"}, "", false},
		{"item null", json.RawMessage(`null`),
			[]string{"interventions[1].progres_interventionnumber:required"}, "", false},
		{"repeated key", json.RawMessage(`{"progres_interventionnumber":"N-6","individuals.progres_familyname":"A","individuals.progres_familyname":"B"}`),
			[]string{"interventions[1].individuals.progres_familyname:duplicate_key"}, "", true},
		{"no family name", withKey("N-7", func(m map[string]any) { delete(m, "individuals.progres_familyname") }),
			[]string{"interventions[1].individuals.progres_familyname:required"}, "", true},
		{"service type the profile does not map", withKey("N-8", func(m map[string]any) { m["interventiontype.progres_description"] = "Not A Service" }),
			[]string{"interventions[1].interventiontype.progres_description:unknown_code"}, `"Not A Service"`, true},
	}
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, db, nil)
				first := withNumber(t, good, fmt.Sprintf("TST-BAD-%02d-FIRST", i))
				last := withNumber(t, good, fmt.Sprintf("TST-BAD-%02d-LAST", i))
				resp := batchAnswer(t, h.postDTP(t, RouteInterventions, withItems(t, f1, first, tt.item, last), tokenA))
				if got := outcomes(resp); !slices.Equal(got, []refbridge.IntakeOutcome{"accepted", "rejected", "accepted"}) {
					t.Fatalf("outcomes %v; %s", got, mustJSON(t, resp.Results))
				}
				bad := resp.Results[1]
				if got := rules(bad.Problems); !slices.Equal(got, tt.want) {
					t.Errorf("problems %v, want %v", got, tt.want)
				}
				for _, p := range bad.Problems {
					if p.Detail == "" {
						t.Errorf("problem without detail: %+v", p)
					}
				}
				if tt.detail != "" && (len(bad.Problems) == 0 || !strings.Contains(bad.Problems[0].Detail, tt.detail)) {
					t.Errorf("the detail should name %s: %+v", tt.detail, bad.Problems)
				}
				if (bad.ExchangeID != "") != tt.stored {
					t.Errorf("stored = %v, want %v", bad.ExchangeID != "", tt.stored)
				}

				// What the one Receive call of this request stored.
				batch := db.createdWith(t, db.exchange(t, refbridge.FlowIntervention, resp.Results[0].Key))
				wantStored := 2
				if tt.stored {
					wantStored = 3
				}
				if len(batch) != wantStored {
					t.Errorf("stored %d items, want %d", len(batch), wantStored)
				}
				for _, ex := range batch {
					switch {
					case ex.Key == "" || ex.Key != strings.TrimSpace(ex.Key):
						t.Errorf("stored an item without a usable key: %q", ex.Key)
					case ex.Key == bad.Key:
						if ex.ID != bad.ExchangeID || ex.State != refbridge.StateRejected || len(ex.Problems) == 0 {
							t.Errorf("bad item stored as %s with %v", ex.State, ex.Problems)
						}
					case ex.State != refbridge.StateReceived || len(ex.Problems) != 0:
						t.Errorf("good item %s stored as %s with %v", ex.Key, ex.State, ex.Problems)
					}
				}
			})
		}
	})
}

// TestBodyRefused: a body that cannot be read at all is a 400 (413, 415)
// with a problem that names what is wrong without quoting the body, and
// nothing reaches the Inbox.
func TestBodyRefused(t *testing.T) {
	t.Parallel()
	good := fixture(t, "dtp-interventions-inbound.json")
	big := withItems(t, f1, map[string]any{"progres_interventionnumber": "N", "progres_interventiondescription": strings.Repeat("x", 2048)})
	tests := []struct {
		name        string
		body        []byte
		contentType string
		status      int
		field, rule string
	}{
		{"oversize", big, "application/json", http.StatusRequestEntityTooLarge, "", ""},
		{"oversize, no JSON", append([]byte("{"), bytes.Repeat([]byte{0xff}, 2000)...), "application/json", http.StatusRequestEntityTooLarge, "", ""},
		{"no content type", good, "", http.StatusUnsupportedMediaType, "", ""},
		{"text/plain", good, "text/plain", http.StatusUnsupportedMediaType, "", ""},
		{"form", good, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, "", ""},
		{"latin-1 charset", good, "application/json; charset=iso-8859-1", http.StatusUnsupportedMediaType, "", ""},
		{"empty", nil, "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"not JSON", []byte(`{"interventions": [Testchild]}`), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"trailing garbage", append(bytes.Clone(good), []byte(` {"Testchild":1}`)...), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"two values", append(bytes.Clone(good), good...), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"invalid UTF-8", []byte("{\"interventions\":[{\"progres_interventionnumber\":\"N\xff\xfe\"}]}"), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"deep nesting", []byte(`{"__query_params":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `,"interventions":[]}`), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"deep in an item", []byte(`{"interventions":[{"user.progres_partner":{"KeyAttributes":` + strings.Repeat(`[`, 30) + strings.Repeat(`]`, 30) + `}}]}`), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"very deep", []byte(strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000)), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"array body", []byte(`[]`), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"null body", []byte(`null`), "application/json", http.StatusBadRequest, "$", RuleInvalidJSON},
		{"unknown envelope key", []byte(`{"interventions":[],"foo":"Testchild"}`), "application/json", http.StatusBadRequest, "foo", RuleUnknownField},
		{"envelope key in other case", []byte(`{"Interventions":[]}`), "application/json", http.StatusBadRequest, "Interventions", RuleUnknownField},
		{"repeated envelope key", []byte(`{"interventions":[],"interventions":[{"progres_interventionnumber":"N"}]}`), "application/json", http.StatusBadRequest, "interventions", RuleDuplicateKey},
		{"no interventions", []byte(`{"request_type":"PrimeroOutgoingReferral"}`), "application/json", http.StatusBadRequest, "interventions", RuleRequired},
		{"interventions null", []byte(`{"interventions":null}`), "application/json", http.StatusBadRequest, "interventions", RuleRequired},
		{"interventions not a list", []byte(`{"interventions":{"progres_interventionnumber":"N"}}`), "application/json", http.StatusBadRequest, "interventions", RuleInvalidJSON},
		{"request_type not a string", []byte(`{"interventions":[],"request_type":1}`), "application/json", http.StatusBadRequest, "request_type", RuleInvalidJSON},
	}
	// Nothing may be stored: the cases share one store, which stays empty.
	db := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// 1 KiB: below every fixture-based body except the oversize ones.
			h := newHarness(t, db, func(c *Config) {
				if strings.HasPrefix(tt.name, "oversize") {
					c.MaxBodyBytes = 1024
				}
			})
			headers := []string{"Authorization", "Bearer " + tokenA}
			if tt.contentType != "" {
				headers = append(headers, "Content-Type", tt.contentType)
			}
			r := h.do(t, http.MethodPost, RouteInterventions, tt.body, headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; %s", r.status, tt.status, r.body)
			}
			e := errorAnswer(t, r)
			if e.Code != refbridge.EInvalid {
				t.Errorf("code %s", e.Code)
			}
			if tt.rule != "" {
				if len(e.Problems) == 0 || e.Problems[0].Field != tt.field || e.Problems[0].Rule != tt.rule || e.Problems[0].Detail == "" {
					t.Errorf("problems %+v, want %s:%s", e.Problems, tt.field, tt.rule)
				}
			}
			if bytes.Contains(r.body, []byte("xxxx")) || bytes.Contains(r.body, []byte("\\ufffd")) || bytes.Contains(r.body, []byte("PRTITV")) {
				t.Errorf("the answer quotes the body: %s", r.body)
			}
			assertNoPersonalData(t, "answer", r.body)
			if all := db.all(t); len(all) != 0 {
				t.Errorf("the store holds %d exchanges; a refused body must store nothing", len(all))
			}
		})
	}
}

// TestCheckOrder: auth before media type before size before JSON.
func TestCheckOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newStore(t), func(c *Config) { c.MaxBodyBytes = 16 })
	big := []byte(`{"interventions":[` + strings.Repeat(`{},`, 20) + `{}]}`)
	tests := []struct {
		name    string
		headers []string
		status  int
	}{
		{"no token, wrong type, too big", []string{"Content-Type", "text/plain"}, http.StatusUnauthorized},
		{"token, wrong type, too big", []string{"Authorization", "Bearer " + tokenA, "Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"token, JSON, too big", []string{"Authorization", "Bearer " + tokenA, "Content-Type", "application/json"}, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if r := h.do(t, http.MethodPost, RouteInterventions, big, tt.headers...); r.status != tt.status {
				t.Errorf("status %d, want %d", r.status, tt.status)
			}
		})
	}
}

// TestOversizeWithoutContentLength: a chunked body is cut at the limit too.
func TestOversizeWithoutContentLength(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newStore(t), func(c *Config) { c.MaxBodyBytes = 64 })
	req, err := http.NewRequest(http.MethodPost, RouteInterventions, strings.NewReader(`{"interventions":[`+strings.Repeat(`{},`, 100)+`{}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokenA)
	rec := newRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", rec.Code)
	}
}

// TestAuth: every request without a current token is a 401 with
// WWW-Authenticate: Bearer and a JSON error that does not echo the token,
// and nothing reaches the store. The cases share one store and post items
// under numbers of their own.
func TestAuth(t *testing.T) {
	t.Parallel()
	items := fixtureItems(t, "dtp-interventions-inbound.json")
	tests := []struct {
		name    string
		headers []string
		status  int
	}{
		{"no header", nil, http.StatusUnauthorized},
		{"wrong token", []string{"Authorization", "Bearer not-the-token"}, http.StatusUnauthorized},
		{"prefix of the token", []string{"Authorization", "Bearer " + tokenA[:10]}, http.StatusUnauthorized},
		{"token plus more", []string{"Authorization", "Bearer " + tokenA + "x"}, http.StatusUnauthorized},
		{"empty bearer", []string{"Authorization", "Bearer "}, http.StatusUnauthorized},
		{"token without scheme", []string{"Authorization", tokenA}, http.StatusUnauthorized},
		{"basic scheme", []string{"Authorization", "Basic " + tokenA}, http.StatusUnauthorized},
		{"as x-api-key", []string{"X-Api-Key", tokenA}, http.StatusUnauthorized},
		{"two headers", []string{"Authorization", "Bearer " + tokenA, "Authorization", "Bearer " + tokenA}, http.StatusUnauthorized},
		{"webhook key", []string{"Authorization", "Bearer " + webhookKey}, http.StatusUnauthorized},
		{"valid", []string{"Authorization", "Bearer " + tokenA}, http.StatusOK},
		{"scheme in lower case", []string{"Authorization", "bearer " + tokenA}, http.StatusOK},
	}
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, db, nil)
				keys := make([]string, len(items))
				batch := make([]any, len(items))
				for j, it := range items {
					keys[j] = fmt.Sprintf("TST-AUTH-%02d-%d", i, j)
					batch[j] = withNumber(t, it, keys[j])
				}
				body := withItems(t, f1, batch...)
				for _, route := range []string{RouteInterventions, RouteDecisions, RouteInbox} {
					r := h.do(t, http.MethodPost, route, body, append([]string{"Content-Type", "application/json"}, tt.headers...)...)
					if route == RouteDecisions && tt.status == http.StatusOK {
						continue // the F1 fixture on the F2d route is a 400, checked elsewhere
					}
					if r.status != tt.status {
						t.Fatalf("%s: status %d, want %d; %s", route, r.status, tt.status, r.body)
					}
					if tt.status != http.StatusUnauthorized {
						continue
					}
					if r.header.Get("WWW-Authenticate") == "" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s: WWW-Authenticate %q", route, r.header.Get("WWW-Authenticate"))
					}
					if e := errorAnswer(t, r); e.Code != refbridge.EUnauthorized {
						t.Errorf("%s: code %s", route, e.Code)
					}
					if bytes.Contains(r.body, []byte(tokenA[:10])) || bytes.Contains(r.body, []byte("not-the-token")) {
						t.Errorf("%s: the answer echoes the token: %s", route, r.body)
					}
				}
				if tt.status == http.StatusUnauthorized {
					db.assertAbsent(t, refbridge.FlowIntervention, keys...)
				} else {
					db.exchange(t, refbridge.FlowIntervention, keys[0])
				}
				if strings.Contains(h.logs.String(), tokenA) || strings.Contains(h.logs.String(), "not-the-token") {
					t.Errorf("the log holds a token")
				}
			})
		}
	})
}

// TestTokenRotation: during a rotation both tokens work; once the old one
// is retired with SetTokens it is refused and nothing it posts reaches the
// store. Every post carries a decision of its own, so the store shows
// which posts got through. Rotation races with requests (run with -race).
func TestTokenRotation(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		decision := fixtureItems(t, "dtp-decision-inbound.json")[0]
		n := 0
		post := func(token string) int {
			t.Helper()
			n++
			id := orgReferralID(0x7000 + n)
			r := h.postDTP(t, RouteDecisions, withItems(t, f2d, withOrgReferralID(t, decision, id)), token)
			if r.status == http.StatusOK {
				db.exchange(t, refbridge.FlowReferralDecision, id)
			} else {
				db.assertAbsent(t, refbridge.FlowReferralDecision, id)
			}
			return r.status
		}

		if post(tokenA) != http.StatusOK || post(tokenB) != http.StatusUnauthorized {
			t.Fatal("before rotation: only A")
		}
		h.srv.SetTokens([]string{tokenA, " " + tokenB + "\n", ""})
		if post(tokenA) != http.StatusOK || post(tokenB) != http.StatusOK {
			t.Fatal("during rotation: both")
		}
		h.srv.SetTokens([]string{tokenB})
		if post(tokenA) != http.StatusUnauthorized || post(tokenB) != http.StatusOK {
			t.Fatal("after rotation: only B")
		}
		h.srv.SetTokens(nil)
		if post(tokenB) != http.StatusUnauthorized || post("") != http.StatusUnauthorized {
			t.Fatal("with no tokens nothing is admitted")
		}
		h.srv.SetTokens([]string{tokenB})
		if all := db.all(t); len(all) != 4 {
			t.Errorf("the store holds %d decisions, want the 4 admitted ones", len(all))
		}

		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 200 {
				if i%2 == 0 {
					h.srv.SetTokens([]string{tokenA, tokenB})
				} else {
					h.srv.SetTokens([]string{tokenB})
				}
			}
		}()
		for range 50 {
			if s := post(tokenB); s != http.StatusOK {
				t.Errorf("token B refused during concurrent rotation: %d", s)
			}
		}
		<-done
	})
}

// TestInboxFailure: when the Inbox fails nothing is acknowledged: 503 with
// Retry-After for a transient failure (also a cancelled request, which the
// real store reports as such), 500 otherwise, no per-item results; a later
// post stores everything. The failures other than the cancelled request
// are injected by failingInbox in front of the store, which stays empty.
func TestInboxFailure(t *testing.T) {
	t.Parallel()
	body := fixture(t, "dtp-interventions-inbound.json")
	tests := []struct {
		name       string
		err        error // injected; nil: the store itself answers
		cancel     bool  // the request's context is cancelled
		status     int
		retryAfter string
	}{
		{"transient", &refbridge.Error{Code: refbridge.ETransient, Message: "database is locked"}, false, http.StatusServiceUnavailable, "5"},
		{"transient with wait", &refbridge.Error{Code: refbridge.ETransient, RetryAfter: 1500 * time.Millisecond}, false, http.StatusServiceUnavailable, "2"},
		{"rate limited", &refbridge.Error{Code: refbridge.ERateLimited, RetryAfter: 30 * time.Second}, false, http.StatusTooManyRequests, "30"},
		{"store full", &refbridge.Error{Code: refbridge.EStoreFull, Message: "store: disk full", Err: errors.New("database or disk is full (13)")},
			false, http.StatusServiceUnavailable, "5"},
		{"deadline", context.DeadlineExceeded, false, http.StatusServiceUnavailable, "5"},
		{"plain error", errors.New("disk I/O error: Testchild"), false, http.StatusInternalServerError, ""},
		{"invalid from store", &refbridge.Error{Code: refbridge.EInvalid, Message: "constraint"}, false, http.StatusInternalServerError, ""},
		{"cancelled request, real store", nil, true, http.StatusServiceUnavailable, "5"},
	}
	db := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, db, func(c *Config) { c.Inbox = &failingInbox{Inbox: c.Inbox, err: tt.err} })
			ctx := context.Background()
			if tt.cancel {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				ctx = cctx
			}
			r := h.doContext(t, ctx, http.MethodPost, RouteInterventions, body, "Content-Type", "application/json", "Authorization", "Bearer "+tokenA)
			if r.status != tt.status || r.header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("status %d Retry-After %q, want %d %q; %s", r.status, r.header.Get("Retry-After"), tt.status, tt.retryAfter, r.body)
			}
			e := errorAnswer(t, r)
			if want := refbridge.ErrorCodeOf(tt.err); want == refbridge.EStoreFull && e.Code != want {
				t.Errorf("code %q, want %q: %s", e.Code, want, r.body)
			}
			if bytes.Contains(r.body, []byte("results")) || bytes.Contains(r.body, []byte("accepted\"")) || len(e.Problems) != 0 {
				t.Errorf("a failed store must acknowledge nothing: %s", r.body)
			}
			if bytes.Contains(r.body, []byte("locked")) || bytes.Contains(r.body, []byte("disk")) || bytes.Contains(r.body, []byte("cancel")) {
				t.Errorf("the cause's text leaked: %s", r.body)
			}
			assertNoPersonalData(t, "log", []byte(h.logs.String()))
			if all := db.all(t); len(all) != 0 {
				t.Errorf("the store holds %d exchanges after a failed Receive", len(all))
			}
		})
	}

	t.Run("recovers", func(t *testing.T) {
		t.Parallel()
		forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
			db := open(t)
			inbox := &failingInbox{Inbox: db.DB, err: &refbridge.Error{Code: refbridge.ETransient}}
			h := newHarness(t, db, func(c *Config) { c.Inbox = inbox })
			if r := h.postDTP(t, RouteInterventions, body, tokenA); r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d", r.status)
			}
			inbox.fail(nil)
			if resp := batchAnswer(t, h.postDTP(t, RouteInterventions, body, tokenA)); resp.Accepted != 2 || resp.Rejected != 1 || resp.Duplicate != 0 {
				t.Errorf("after recovery: %+v (a duplicate would mean the failed post was stored)", resp.counts)
			}
			if all := db.all(t); len(all) != 3 {
				t.Errorf("the store holds %d exchanges, want 3", len(all))
			}
		})
	})
}

// TestInboxContractViolations: an Inbox answering out of contract is a 500,
// never a 200 that acknowledges what may not be stored. failingInbox lets
// the store commit for real and garbles its answer; DTP then sends again
// and hears duplicates, so nothing is lost and nothing is processed twice.
func TestInboxContractViolations(t *testing.T) {
	t.Parallel()
	decision := fixtureItems(t, "dtp-decision-inbound.json")[0]
	tests := []struct {
		name   string
		answer func([]refbridge.Intake) []refbridge.Intake
	}{
		{"too few", func(in []refbridge.Intake) []refbridge.Intake { return in[:1] }},
		{"too many", func(in []refbridge.Intake) []refbridge.Intake { return append(slices.Clone(in), in[0]) }},
		{"unknown outcome", func(in []refbridge.Intake) []refbridge.Intake {
			out := slices.Clone(in)
			out[0].Outcome = "maybe"
			return out
		}},
	}
	db := newStore(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := withItems(t, f2d, withOrgReferralID(t, decision, orgReferralID(0x8000+2*i)), withOrgReferralID(t, decision, orgReferralID(0x8001+2*i)))
			h := newHarness(t, db, func(c *Config) { c.Inbox = &failingInbox{Inbox: c.Inbox, answer: tt.answer} })
			r := h.postDTP(t, RouteDecisions, body, tokenA)
			if r.status != http.StatusInternalServerError {
				t.Fatalf("status %d", r.status)
			}
			if e := errorAnswer(t, r); e.Code != refbridge.EInternal || len(e.Problems) != 0 {
				t.Errorf("answer %s", r.body)
			}
			resent := batchAnswer(t, newHarness(t, db, nil).postDTP(t, RouteDecisions, body, tokenA))
			if got := outcomes(resent); !slices.Equal(got, []refbridge.IntakeOutcome{"duplicate", "duplicate"}) {
				t.Errorf("sent again: %v", got)
			}
		})
	}
}

// TestInboxRouting: /inbox routes by request_type; the flow routes take
// their own type or none and refuse the other. The admitted cases share one
// store; the refused ones share another, which stays empty.
func TestInboxRouting(t *testing.T) {
	t.Parallel()
	iv := fixture(t, "dtp-interventions-inbound.json")
	dec := fixture(t, "dtp-decision-inbound.json")
	noType := withItems(t, "", fixtureItems(t, "dtp-interventions-inbound.json")[0])
	noType = bytes.Replace(noType, []byte(`,"request_type":""`), nil, 1)
	tests := []struct {
		name     string
		route    string
		body     []byte
		status   int
		wantType string
		problem  string
	}{
		{"inbox F1", RouteInbox, iv, http.StatusOK, f1, ""},
		{"inbox F2d", RouteInbox, dec, http.StatusOK, f2d, ""},
		{"inbox without type", RouteInbox, noType, http.StatusBadRequest, "", "request_type:required"},
		{"inbox unknown type", RouteInbox, withItems(t, "ReceiveIncomingReferral"), http.StatusBadRequest, "", "request_type:unknown_code"},
		{"inbox type in other case", RouteInbox, withItems(t, "primerooutgoingreferral"), http.StatusBadRequest, "", "request_type:unknown_code"},
		{"interventions without type", RouteInterventions, noType, http.StatusOK, f1, ""},
		{"interventions given decisions", RouteInterventions, dec, http.StatusBadRequest, "", "request_type:mismatch"},
		{"decisions given interventions", RouteDecisions, iv, http.StatusBadRequest, "", "request_type:mismatch"},
		{"decisions", RouteDecisions, dec, http.StatusOK, f2d, ""},
		{"empty batch", RouteInbox, withItems(t, f2d), http.StatusOK, f2d, ""},
	}
	admitted, refused := newStore(t), newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.status == http.StatusOK {
				r := newHarness(t, admitted, nil).postDTP(t, tt.route, tt.body, tokenA)
				if resp := batchAnswer(t, r); resp.RequestType != tt.wantType {
					t.Errorf("request_type %s, want %s", resp.RequestType, tt.wantType)
				}
				return
			}
			r := newHarness(t, refused, nil).postDTP(t, tt.route, tt.body, tokenA)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; %s", r.status, tt.status, r.body)
			}
			e := errorAnswer(t, r)
			if got := rules(e.Problems); !slices.Equal(got, []string{tt.problem}) {
				t.Errorf("problems %v, want %s", got, tt.problem)
			}
			if all := refused.all(t); len(all) != 0 {
				t.Errorf("a refused batch reached the store: %d exchanges", len(all))
			}
		})
	}
	t.Run("unknown type is named", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, refused, nil)
		e := errorAnswer(t, h.postDTP(t, RouteInbox, withItems(t, "Feedback"), tokenA))
		if !strings.Contains(e.Problems[0].Detail, `"Feedback"`) || !strings.Contains(e.Problems[0].Detail, f1) {
			t.Errorf("detail %q", e.Problems[0].Detail)
		}
	})
}

// TestDTPSimulatorPostsToBridge: the DTP simulator's proGres side posts
// both flows to a real listener, as it will in the demo.
func TestDTPSimulatorPostsToBridge(t *testing.T) {
	t.Parallel()
	db := newStore(t)
	h := newHarness(t, db, nil)
	srv := newHTTPServer(t, h.srv.Handler())
	sim := dtptest.New(dtptest.Options{})

	var ivs refbridge.InterventionBatch
	var decs refbridge.DecisionBatch
	if err := json.Unmarshal(fixture(t, "dtp-interventions-inbound.json"), &ivs); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixture(t, "dtp-decision-inbound.json"), &decs); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	rep, err := sim.PostInterventions(ctx, srv.URL+RouteInbox, tokenA, ivs)
	if err != nil || rep.Status != http.StatusOK {
		t.Fatalf("interventions: %v %+v", err, rep)
	}
	resp := batchAnswer(t, reply{status: rep.Status, body: rep.Body})
	if resp.Accepted != 2 || resp.Rejected != 1 {
		t.Errorf("interventions: %+v", resp.counts)
	}
	rep, err = sim.PostDecisions(ctx, srv.URL+RouteInbox, tokenA, decs)
	if err != nil || rep.Status != http.StatusOK {
		t.Fatalf("decisions: %v %+v", err, rep)
	}
	rep, err = sim.PostDecisions(ctx, srv.URL+RouteInbox, "", decs)
	if err != nil || rep.Status != http.StatusUnauthorized {
		t.Fatalf("without token: %v %+v", err, rep)
	}
	if all := db.all(t); len(all) != 5 {
		t.Errorf("the store holds %d exchanges, want 3 interventions and 2 decisions", len(all))
	}
}

func clone(t testing.TB, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDecisionRefused: a decision the profile refuses is stored as rejected
// (UNHCR's decision must not vanish) and answered with the reason; one
// without its org-referral id cannot be correlated and is answered only.
func TestDecisionRefused(t *testing.T) {
	t.Parallel()
	forEachInbox(t, func(t *testing.T, open func(testing.TB) *testStore) {
		db := open(t)
		h := newHarness(t, db, nil)
		items := fixtureItems(t, "dtp-decision-inbound.json")
		items[0]["progres_reviewdecision"] = "999"
		delete(items[1], "progres_orgreferralid")
		resp := batchAnswer(t, h.postDTP(t, RouteInbox, withItems(t, f2d, items[0], items[1]), tokenA))
		if got := rules(resp.Results[0].Problems); !slices.Equal(got, []string{"interventions[0].progres_reviewdecision:unknown_code"}) || resp.Results[0].ExchangeID == "" {
			t.Errorf("result 0: %+v", resp.Results[0])
		}
		if got := rules(resp.Results[1].Problems); !slices.Equal(got, []string{"interventions[1].progres_orgreferralid:required"}) || resp.Results[1].ExchangeID != "" {
			t.Errorf("result 1: %+v", resp.Results[1])
		}
		all := db.all(t)
		if len(all) != 1 {
			t.Fatalf("the store holds %d exchanges, want 1", len(all))
		}
		ex := db.exchange(t, refbridge.FlowReferralDecision, resp.Results[0].Key)
		if ex.ID != resp.Results[0].ExchangeID || ex.State != refbridge.StateRejected ||
			!slices.Equal(rules(ex.Problems), []string{"progres_reviewdecision:unknown_code"}) {
			t.Errorf("stored as %s with %v", ex.State, rules(ex.Problems))
		}
	})
}
