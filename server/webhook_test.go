package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/primero/primerotest"
)

const caseID = "6f1c2a4e-0000-4000-8000-0000000000aa"

// webhookBody is what Primero posts: the record id and type, and whatever
// case fields the webhook's role may read (a child's data).
func webhookBody(t testing.TB, recordType, recordID string) []byte {
	t.Helper()
	data := map[string]any{"name_first": "Testchild", "name_last": "Fixture", "date_of_birth": "2014-03-15",
		"telephone_current": "+000000000001", "services_section": []any{map[string]any{"unique_id": "x"}}}
	if recordType != "" {
		data["record_type"] = recordType
	}
	if recordID != "" {
		data["record_id"] = recordID
	}
	b, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestWebhook: a Primero webhook with a valid key triggers processing of
// its case and is answered 202; other record types are 422; a wrong or
// missing key is 401 and triggers nothing; the case's other fields never
// appear in an answer or a log line.
func TestWebhook(t *testing.T) {
	t.Parallel()
	ct := []string{"Content-Type", "application/json"}
	tests := []struct {
		name    string
		body    []byte
		headers []string
		status  int
		problem string
	}{
		{"x-api-key", webhookBody(t, "case", caseID), []string{"X-Api-Key", webhookKey}, http.StatusAccepted, ""},
		{"x-api-key lower case header", webhookBody(t, "case", caseID), []string{"x-api-key", webhookKey}, http.StatusAccepted, ""},
		{"basic password", webhookBody(t, "case", caseID), []string{"Authorization", basic("primero", webhookKey)}, http.StatusAccepted, ""},
		{"upper-case uuid", webhookBody(t, "case", strings.ToUpper(caseID)), []string{"X-Api-Key", webhookKey}, http.StatusAccepted, ""},
		{"no key", webhookBody(t, "case", caseID), nil, http.StatusUnauthorized, ""},
		{"wrong key", webhookBody(t, "case", caseID), []string{"X-Api-Key", "nope"}, http.StatusUnauthorized, ""},
		{"wrong basic password", webhookBody(t, "case", caseID), []string{"Authorization", basic(webhookKey, "nope")}, http.StatusUnauthorized, ""},
		{"DTP bearer token", webhookBody(t, "case", caseID), []string{"Authorization", "Bearer " + tokenA}, http.StatusUnauthorized, ""},
		{"incident", webhookBody(t, "incident", caseID), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data.record_type:unknown_code"},
		{"no record type", webhookBody(t, "", caseID), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data.record_type:required"},
		{"no record id", webhookBody(t, "case", ""), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data.record_id:required"},
		{"record id a number", []byte(`{"data":{"record_type":"case","record_id":42}}`), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data.record_id:format"},
		{"record id not a uuid", webhookBody(t, "case", "Testchild"), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data.record_id:format"},
		{"no data", []byte(`{"record_id":"` + caseID + `"}`), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data:required"},
		{"data not an object", []byte(`{"data":"Testchild"}`), []string{"X-Api-Key", webhookKey}, http.StatusUnprocessableEntity, "data:required"},
		{"not JSON", []byte(`{"data":{"name_first":Testchild}}`), []string{"X-Api-Key", webhookKey}, http.StatusBadRequest, "$:invalid_json"},
		{"repeated record_id", []byte(`{"data":{"record_type":"case","record_id":"` + caseID + `","record_id":"` + caseID + `"}}`), []string{"X-Api-Key", webhookKey}, http.StatusBadRequest, "$:invalid_json"},
		{"deep", []byte(`{"data":{"record_type":"case","record_id":"` + caseID + `","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`), []string{"X-Api-Key", webhookKey}, http.StatusBadRequest, "$:invalid_json"},
	}
	// A webhook stores nothing: the cases share one store, which stays empty.
	db := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, db, nil)
			r := h.do(t, http.MethodPost, RoutePrimeroWebhook, tt.body, append(slices.Clone(ct), tt.headers...)...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; %s", r.status, tt.status, r.body)
			}
			got := h.trigger.got()
			if tt.status == http.StatusAccepted {
				if len(got) != 1 || !strings.EqualFold(got[0], caseID) {
					t.Errorf("triggered %v", got)
				}
			} else if len(got) != 0 {
				t.Errorf("triggered %v on a refused webhook", got)
			}
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
			if tt.problem != "" {
				if e := errorAnswer(t, r); !slices.Equal(rules(e.Problems), []string{tt.problem}) {
					t.Errorf("problems %v, want %s", rules(e.Problems), tt.problem)
				}
			}
			assertNoPersonalData(t, "answer", r.body)
			assertNoPersonalData(t, "log", []byte(h.logs.String()))
			if all := db.all(t); len(all) != 0 {
				t.Errorf("a webhook must not store anything; the store holds %d exchanges", len(all))
			}
		})
	}
}

// TestWebhookTriggerFailure: the engine's failure is a 503 (transient) or
// 500, without its message.
func TestWebhookTriggerFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"transient", &refbridge.Error{Code: refbridge.ETransient, Message: "queue full"}, http.StatusServiceUnavailable},
		{"internal", &refbridge.Error{Code: refbridge.EInternal, Message: "broken"}, http.StatusInternalServerError},
	}
	db := newStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, db, nil)
			h.trigger.err = tt.err
			r := h.do(t, http.MethodPost, RoutePrimeroWebhook, webhookBody(t, "case", caseID), "Content-Type", "application/json", "X-Api-Key", webhookKey)
			if r.status != tt.status || strings.Contains(string(r.body), "queue full") || strings.Contains(string(r.body), "broken") {
				t.Errorf("status %d body %s", r.status, r.body)
			}
		})
	}
}

// TestWebhookDisabled: without a Trigger the route does not exist, and a
// Trigger without keys is refused at start.
func TestWebhookDisabled(t *testing.T) {
	t.Parallel()
	db := newStore(t)
	h := newHarness(t, db, func(c *Config) { c.Trigger = nil })
	if r := h.do(t, http.MethodPost, RoutePrimeroWebhook, webhookBody(t, "case", caseID), "Content-Type", "application/json", "X-Api-Key", webhookKey); r.status != http.StatusNotFound {
		t.Errorf("status %d", r.status)
	}
	if _, err := New(Config{Tokens: []string{tokenA}, Inbox: db.DB, Validator: newValidator(t), Trigger: &triggerRecorder{}}); err == nil {
		t.Error("a webhook without keys was accepted")
	}
}

// TestPrimeroSimulatorWebhook: the Primero simulator's real webhook, fired
// by a case update, reaches the trigger; Primero logs the delivery as a success.
func TestPrimeroSimulatorWebhook(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newStore(t), nil)
	srv := newHTTPServer(t, h.srv.Handler())
	sim := primerotest.NewServer(t, primerotest.Options{Webhooks: []primerotest.Webhook{
		{URL: srv.URL + RoutePrimeroWebhook, Events: []string{"case.update"}, APIKey: webhookKey},
		{URL: srv.URL + RoutePrimeroWebhook, Events: []string{"case.update"}, BasicAuth: "primero:" + webhookKey},
	}})
	sim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "bridge"}, Password: "pw-bridge", Scope: primerotest.ScopeAll})
	id := sim.SeedCase(map[string]any{"name_first": "Testchild", "owned_by": "bridge"})
	if err := sim.PatchCase(id, "bridge", map[string]any{"name_last": "Fixture", "date_of_birth": "2014-03-15"}); err != nil {
		t.Fatal(err)
	}
	sim.WaitWebhooks()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.trigger.got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.trigger.got(); len(got) != 2 || got[0] != id || got[1] != id {
		t.Fatalf("triggered %v, want %s twice", got, id)
	}
	for _, d := range sim.WebhookLog() {
		if d.Failed() || d.Status != http.StatusAccepted {
			t.Errorf("delivery %+v", d)
		}
	}
	assertNoPersonalData(t, "log", []byte(h.logs.String()))
}
