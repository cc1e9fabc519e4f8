package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"refbridge"
	"refbridge/engine"
	"refbridge/internal/syncbuf"
	"refbridge/profile"
	"refbridge/store"
)

// Test tokens and keys; test values, not secrets.
const (
	tokenA     = "dtp-token-a-0123456789"
	tokenB     = "dtp-token-b-9876543210"
	webhookKey = "primero-webhook-key-42"
)

// personalValues lists values from the fixtures that are a person's data:
// no response and no log line may ever contain one.
func personalValues() []string {
	return []string{"Testchild", "Fixture", "Fixie", "2014-03-15", "+000000000001",
		"Givenname Two", "Familyname Three", "2016-07-01", "2012-11-20", "+000000000003", "Test Plot 6"}
}

// storeEpoch is where every test store's clock starts.
var storeEpoch = time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)

// storeClock is a test store's clock: every reading is 1 ms after the one
// before. Receive reads it once per call, so the rows one call committed
// carry an instant no other call's rows carry, and a test can tell what a
// given request stored.
type storeClock struct{ ticks atomic.Int64 }

func (c *storeClock) now() time.Time {
	return storeEpoch.Add(time.Duration(c.ticks.Add(1)) * time.Millisecond)
}

// mark returns an instant after every reading so far and before every
// later one: rows stamped at or after it were written after mark was taken.
func (c *storeClock) mark() time.Time {
	return storeEpoch.Add(time.Duration(c.ticks.Load())*time.Millisecond + time.Microsecond)
}

// testStore is the real durable store (encrypted SQLite, River jobs and all)
// a test runs the handler against, with its clock.
type testStore struct {
	*store.DB
	clock *storeClock
}

// inboxFactory opens a fresh, empty store for one test; the test's
// subtests may share it when their items have distinct keys.
type inboxFactory struct {
	name string
	open func(t testing.TB) *testStore
}

// inboxFactories are the stores the handler tests run against: SQLite
// today; the PostgreSQL dialect (issue #7) is one more entry.
func inboxFactories() []inboxFactory {
	return []inboxFactory{{"sqlite", openSQLiteStore}}
}

// newStore opens a fresh store of the first kind, for the tests that do not
// run against every kind.
func newStore(t testing.TB) *testStore {
	t.Helper()
	return inboxFactories()[0].open(t)
}

// openSQLiteStore opens a fresh SQLite store in t's temporary directory
// under a generated keyring, closed when t ends.
func openSQLiteStore(t testing.TB) *testStore {
	t.Helper()
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	clock := &storeClock{}
	db, err := store.Open(context.Background(), store.Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &testStore{DB: db, clock: clock}
}

// forEachInbox runs fn once per kind of store, as parallel subtests; open
// opens a fresh store of that kind.
func forEachInbox(t *testing.T, fn func(t *testing.T, open func(testing.TB) *testStore)) {
	t.Helper()
	for _, f := range inboxFactories() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			fn(t, f.open)
		})
	}
}

// exchange returns what the store holds for flow and key, failing t if it
// holds nothing.
func (s *testStore) exchange(t testing.TB, flow refbridge.Flow, key string) refbridge.Exchange {
	t.Helper()
	ex, err := s.GetByKey(context.Background(), flow, key)
	if err != nil {
		t.Fatalf("store: %s %q: %v", flow, key, err)
	}
	return ex
}

// assertAbsent fails t if the store holds anything for flow under one of keys.
func (s *testStore) assertAbsent(t testing.TB, flow refbridge.Flow, keys ...string) {
	t.Helper()
	for _, k := range keys {
		switch ex, err := s.GetByKey(context.Background(), flow, k); refbridge.ErrorCodeOf(err) {
		case refbridge.ENotFound:
		case "":
			t.Errorf("store holds %s %q (exchange %s, %s); nothing should have been stored", flow, k, ex.ID, ex.State)
		default:
			t.Fatalf("store: %s %q: %v", flow, k, err)
		}
	}
}

// list returns the exchanges f selects, newest first, and how many there are.
func (s *testStore) list(t testing.TB, f store.Filter) []refbridge.Exchange {
	t.Helper()
	exs, total, err := s.List(context.Background(), f)
	if err != nil {
		t.Fatalf("store: list: %v", err)
	}
	if f.Limit <= 0 && total != len(exs) {
		t.Fatalf("store: list returned %d of %d", len(exs), total)
	}
	return exs
}

// all returns every exchange in the store, newest first.
func (s *testStore) all(t testing.TB) []refbridge.Exchange {
	t.Helper()
	return s.list(t, store.Filter{})
}

// createdWith returns the exchanges created by the Receive call that
// created ex (the store's clock gives each call an instant of its own).
func (s *testStore) createdWith(t testing.TB, ex refbridge.Exchange) []refbridge.Exchange {
	t.Helper()
	return s.list(t, store.Filter{Since: ex.CreatedAt, Until: ex.CreatedAt.Add(time.Microsecond)})
}

// failingInbox is fault injection on top of the real store, for the failures
// a healthy SQLite file cannot be made to produce on demand (a locked or
// full database, a store answering out of contract). While err is set,
// Receive fails with it before reaching the store, which stays untouched;
// when answer is set, the store commits the batch for real and answer
// rewrites what it answered. Otherwise it is the store.
type failingInbox struct {
	Inbox
	mu     sync.Mutex
	err    error
	answer func([]refbridge.Intake) []refbridge.Intake
}

// fail sets the error Receive fails with (nil: none).
func (f *failingInbox) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *failingInbox) Receive(ctx context.Context, items []refbridge.Inbound) ([]refbridge.Intake, error) {
	f.mu.Lock()
	err, answer := f.err, f.answer
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out, err := f.Inbox.Receive(ctx, items)
	if err == nil && answer != nil {
		out = answer(out)
	}
	return out, err
}

// validatorNow is the date the validator computes ages on. It is fixed so
// that the fixture child's age, and with it every answer, never changes.
var validatorNow = time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)

// gambella is the embedded pilot profile, loaded once.
var gambella = sync.OnceValues(func() (*profile.Profile, error) { return profile.Load("gambella") })

// newValidator is the real edge validator, as production wires it: the
// pilot profile and the mappings the engine runs.
func newValidator(t testing.TB) engine.Validator {
	t.Helper()
	p, err := gambella()
	if err != nil {
		t.Fatal(err)
	}
	return engine.Validator{Profile: p, Now: func() time.Time { return validatorNow }}
}

// triggerRecorder records the case ids the webhook triggered.
type triggerRecorder struct {
	mu  sync.Mutex
	ids []string
	err error
}

func (tr *triggerRecorder) CaseChanged(_ context.Context, id string) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.err != nil {
		return tr.err
	}
	tr.ids = append(tr.ids, id)
	return nil
}

func (tr *triggerRecorder) got() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.ids)
}

// harness is a Server under test with its collaborators.
type harness struct {
	srv     *Server
	db      *testStore
	trigger *triggerRecorder
	logs    *syncbuf.Buffer
}

// reset forgets the recorded triggers and logs (the store keeps everything).
func (h *harness) reset() {
	h.trigger.mu.Lock()
	h.trigger.ids = nil
	h.trigger.mu.Unlock()
	h.logs.Reset()
}

// newHarness builds a Server over the real store db and the real Gambella
// validator, with test token A, the webhook key and a JSON log captured in
// memory. mod may adjust the Config (e.g. wrap Inbox in a failingInbox).
func newHarness(t testing.TB, db *testStore, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{db: db, trigger: &triggerRecorder{}, logs: &syncbuf.Buffer{}}
	cfg := Config{
		Tokens:      []string{tokenA},
		WebhookKeys: []string{webhookKey},
		Inbox:       db.DB,
		Validator:   newValidator(t),
		Trigger:     h.trigger,
		Logger:      slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

// reply is a recorded response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request to the handler. Headers are given as name, value pairs.
func (h *harness) do(t testing.TB, method, path string, body []byte, headers ...string) reply {
	t.Helper()
	return h.doContext(t, context.Background(), method, path, body, headers...)
}

// doContext is do with the request's context.
func (h *harness) doContext(t testing.TB, ctx context.Context, method, path string, body []byte, headers ...string) reply {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// postDTP posts body as DTP does: JSON with a bearer token.
func (h *harness) postDTP(t testing.TB, path string, body []byte, token string) reply {
	t.Helper()
	return h.do(t, http.MethodPost, path, body, "Content-Type", "application/json", "Authorization", "Bearer "+token)
}

// batchAnswer decodes a 200 batch answer strictly (the answer format is
// part of the contract with DTP).
func batchAnswer(t testing.TB, r reply) batchResponse {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var resp struct {
		RequestType string       `json:"request_type"`
		Received    int          `json:"received"`
		Accepted    int          `json:"accepted"`
		Duplicate   int          `json:"duplicate"`
		Updated     int          `json:"updated"`
		Rejected    int          `json:"rejected"`
		Results     []itemResult `json:"results"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("answer %s: %v", r.body, err)
	}
	out := batchResponse{RequestType: resp.RequestType, Results: resp.Results}
	out.Received, out.Accepted, out.Duplicate, out.Updated, out.Rejected = resp.Received, resp.Accepted, resp.Duplicate, resp.Updated, resp.Rejected
	if n := out.Accepted + out.Duplicate + out.Updated + out.Rejected; n != out.Received || len(out.Results) != out.Received {
		t.Fatalf("counts do not add up: %+v (%d results)", out.counts, len(out.Results))
	}
	return out
}

// errorAnswer decodes an error answer strictly.
func errorAnswer(t testing.TB, r reply) errorDetail {
	t.Helper()
	var body errorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error answer %q: %v", r.body, err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error answer without code or message: %s", r.body)
	}
	return body.Error
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// newHTTPServer serves h on a loopback listener until the test ends.
func newHTTPServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// fixture reads a file of testdata/fixtures at the module root.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withItems returns the fixture batch body with its interventions replaced
// by items (each marshalled as given: a map, a json.RawMessage, …).
func withItems(t testing.TB, requestType string, items ...any) []byte {
	t.Helper()
	if items == nil {
		items = []any{}
	}
	b, err := json.Marshal(map[string]any{"interventions": items, "request_type": requestType})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureItems returns the fixture's items as maps, for editing.
func fixtureItems(t testing.TB, name string) []map[string]any {
	t.Helper()
	var batch struct {
		Interventions []map[string]any `json:"interventions"`
	}
	if err := json.Unmarshal(fixture(t, name), &batch); err != nil {
		t.Fatal(err)
	}
	return batch.Interventions
}

// assertNoPersonalData fails if any personal value appears in text.
func assertNoPersonalData(t testing.TB, what string, text []byte) {
	t.Helper()
	for _, v := range personalValues() {
		if bytes.Contains(text, []byte(v)) {
			t.Errorf("%s contains the personal value %q", what, v)
		}
	}
}

func outcomes(resp batchResponse) []refbridge.IntakeOutcome {
	out := make([]refbridge.IntakeOutcome, len(resp.Results))
	for i, r := range resp.Results {
		out[i] = r.Outcome
	}
	return out
}

func rules(ps []refbridge.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Field + ":" + p.Rule
	}
	return out
}

// withNumber returns a copy of an intervention item under another
// intervention number.
func withNumber(t testing.TB, item map[string]any, number string) map[string]any {
	t.Helper()
	out := clone(t, item)
	out["progres_interventionnumber"] = number
	return out
}

// orgReferralID returns the n-th well-formed org-referral id
// ("<case_id>#<12 hex digits>"); tests sharing a store use distinct n.
func orgReferralID(n int) string {
	return fmt.Sprintf("c0c0c0c0-0000-4000-8000-%012x#0a1b2c3d4e5f", n)
}

// withOrgReferralID returns a copy of a decision item for another referral.
func withOrgReferralID(t testing.TB, item map[string]any, id string) map[string]any {
	t.Helper()
	out := clone(t, item)
	out["progres_orgreferralid"] = id
	return out
}
