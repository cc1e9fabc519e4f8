package primerotest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestSyncWriteBack(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := newSim(t, Options{Now: clock.Now})
	id := createCase(t, s, uBridge, map[string]any{"sex": "male", "owned_by": uCW1})
	before := s.Case(id)["last_updated_at"]

	r := request(t, s, http.MethodPatch, "/api/v2/cases/"+id, uBridge, map[string]any{"data": map[string]any{
		"mark_synced": true, "mark_synced_url": "https://dtp.example.org/r/1", "mark_synced_status": "synced",
	}})
	mustStatus(t, r, http.StatusOK)
	log := s.SyncLog(id)
	if len(log) != 1 || !log[0].Synced || log[0].Status != "synced" || log[0].URL != "https://dtp.example.org/r/1" || log[0].User != uBridge {
		t.Fatalf("sync log %+v", log)
	}
	c := s.Case(id)
	for _, k := range []string{"mark_synced", "mark_synced_url", "mark_synced_status"} {
		if _, ok := c[k]; ok {
			t.Errorf("%s stored on the case", k)
		}
	}
	if c["last_updated_at"] == before {
		t.Error("a sync write-back is a write: last_updated_at must move")
	}
	g := request(t, s, http.MethodGet, "/api/v2/cases/"+id, uCW1, nil).data(t)
	if g["sync_status"] != "synced" || g["synced_at"] != log[0].At.UTC().Format(timeLayout) {
		t.Errorf("case shows synced_at %v sync_status %v", g["synced_at"], g["sync_status"])
	}

	// Without sync_external the attributes are dropped silently.
	mustStatus(t, request(t, s, http.MethodPatch, "/api/v2/cases/"+id, uCW1, map[string]any{"data": map[string]any{
		"mark_synced": true, "mark_synced_status": "x",
	}}), http.StatusOK)
	if n := len(s.SyncLog(id)); n != 1 {
		t.Errorf("%d sync entries, want 1", n)
	}
}

// hookReceiver records webhook POSTs and answers with status.
type hookReceiver struct {
	mu     sync.Mutex
	bodies []map[string]any
	heads  []http.Header
}

func newHookReceiver(t *testing.T, status int) (*hookReceiver, string) {
	t.Helper()
	h := &hookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		h.mu.Lock()
		h.bodies = append(h.bodies, m)
		h.heads = append(h.heads, r.Header.Clone())
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookReceiver) received() ([]map[string]any, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.bodies...), append([]http.Header(nil), h.heads...)
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	createsOnly, urlA := newHookReceiver(t, http.StatusOK)
	failing, urlB := newHookReceiver(t, http.StatusInternalServerError)
	narrow, urlC := newHookReceiver(t, http.StatusNoContent)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there any more

	s := newSim(t, Options{Webhooks: []Webhook{
		{URL: urlA, Events: []string{"case.create"}, APIKey: "k-123"},
		{URL: urlB, BasicAuth: "hook:secret"},
		{URL: urlC, Events: []string{"case.update"}, ReadableFields: []string{"sex"}},
		{URL: deadURL},
	}})
	id := createCase(t, s, uBridge, map[string]any{"sex": "male", "name_first": "Testchild"})
	mustStatus(t, request(t, s, http.MethodPatch, "/api/v2/cases/"+id, uBridge,
		map[string]any{"data": map[string]any{"sex": "female"}}), http.StatusOK)
	s.WaitWebhooks()

	bodies, heads := createsOnly.received()
	if len(bodies) != 1 || heads[0].Get("x-api-key") != "k-123" {
		t.Fatalf("case.create hook got %d posts, headers %v", len(bodies), heads)
	}
	d := bodies[0]["data"].(map[string]any)
	if d["record_id"] != id || d["record_type"] != "case" || d["name_first"] != "Testchild" || d["sex"] != "male" {
		t.Errorf("create payload %v", d)
	}

	bodies, heads = failing.received()
	if len(bodies) != 2 {
		t.Fatalf("all-events hook got %d posts, want 2", len(bodies))
	}
	if u, p, ok := (&http.Request{Header: heads[0]}).BasicAuth(); !ok || u != "hook" || p != "secret" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}

	bodies, _ = narrow.received()
	if len(bodies) != 1 {
		t.Fatalf("case.update hook got %d posts", len(bodies))
	}
	d = bodies[0]["data"].(map[string]any)
	if d["sex"] != "female" || d["name_first"] != nil || d["record_id"] != id {
		t.Errorf("narrow payload %v", d)
	}

	var failed, ok int
	for _, dl := range s.WebhookLog() {
		if dl.RecordID != id {
			t.Errorf("delivery for %s", dl.RecordID)
		}
		if dl.Failed() {
			failed++
		} else {
			ok++
		}
	}
	// urlB twice (500) and the dead URL twice fail; urlA and urlC succeed.
	if failed != 4 || ok != 2 {
		t.Errorf("deliveries: %d failed, %d ok; log %+v", failed, ok, s.WebhookLog())
	}
}

func TestSyncEndpointQueuesWebhook(t *testing.T) {
	t.Parallel()
	h, url := newHookReceiver(t, http.StatusOK)
	s := newSim(t, Options{Webhooks: []Webhook{{URL: url, Events: []string{"case.create"}}}})
	id := s.SeedCase(map[string]any{"sex": "male"}) // seeding sends nothing
	r := request(t, s, http.MethodPost, "/api/v2/cases/"+id+"/sync", uBridge, nil)
	mustStatus(t, r, http.StatusOK)
	s.WaitWebhooks()
	if bodies, _ := h.received(); len(bodies) != 1 || bodies[0]["data"].(map[string]any)["record_id"] != id {
		t.Errorf("sync posted %v", bodies)
	}
}

func TestCloseWaitsForWebhooks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var got sync.WaitGroup
	got.Add(1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Done()
		<-release
	}))
	defer slow.Close()
	s := New(Options{Webhooks: []Webhook{{URL: slow.URL}}})
	s.AddUser(UserSpec{User: userNamed(uBridge), Password: "x"})
	if err := s.PatchCase(s.SeedCase(nil), uBridge, map[string]any{"sex": "male"}); err != nil {
		t.Fatal(err)
	}
	got.Wait()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a webhook in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if log := s.WebhookLog(); len(log) != 1 || log[0].Status != http.StatusOK {
		t.Errorf("log %+v", log)
	}
}
