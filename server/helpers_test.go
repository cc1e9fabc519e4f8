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
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"refbridge"
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

// inboxFactory makes a fresh, empty Inbox for one test.
type inboxFactory struct {
	name string
	new  func(t *testing.T) Inbox
}

// inboxFactories are the Inbox implementations the handler tests run
// against. The store-backed one is added here once store/ lands, e.g.
// {"sqlite", func(t *testing.T) Inbox { return store.OpenTest(t) }}.
func inboxFactories() []inboxFactory {
	return []inboxFactory{{"mem", func(*testing.T) Inbox { return newMemInbox() }}}
}

// forEachInbox runs fn once per Inbox implementation, as parallel subtests.
func forEachInbox(t *testing.T, fn func(t *testing.T, newInbox func(t *testing.T) Inbox)) {
	t.Helper()
	for _, f := range inboxFactories() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			fn(t, f.new)
		})
	}
}

// memInbox is a faithful in-memory Inbox: an exchange per flow+key,
// deduplicated by content hash, all-or-nothing per call. It refuses calls
// that break the contract (blank key or hash, a key twice in one call) and
// records them in violations so that the fuzz target can assert on them.
type memInbox struct {
	mu         sync.Mutex
	exchanges  map[string]*memExchange
	seq        int
	violations []string
}

type memExchange struct {
	id       string
	hash     string
	state    refbridge.ExchangeState
	payload  []byte
	problems []refbridge.Problem
	versions int
}

func newMemInbox() *memInbox { return &memInbox{exchanges: map[string]*memExchange{}} }

func (m *memInbox) Receive(ctx context.Context, items []refbridge.Inbound) ([]refbridge.Intake, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for i, in := range items {
		id := string(in.Flow) + "\x00" + in.Key
		var bad string
		switch {
		case in.Flow == "" || strings.TrimSpace(in.Key) == "" || in.ContentHash == "":
			bad = "item without flow, key or hash"
		case seen[id]:
			bad = "key twice in one call"
		case !json.Valid(in.Payload):
			bad = "payload is not JSON"
		case in.State != refbridge.StateReceived && in.State != refbridge.StateRejected:
			bad = "state " + string(in.State)
		case (in.State == refbridge.StateRejected) != (len(in.Problems) > 0):
			bad = "rejected state and problems disagree"
		}
		if bad != "" {
			m.violations = append(m.violations, fmt.Sprintf("item %d: %s", i, bad))
			return nil, refbridge.Errorf(refbridge.EInternal, "mem inbox: item %d: %s", i, bad)
		}
		seen[id] = true
	}
	out := make([]refbridge.Intake, len(items))
	for i, in := range items {
		id := string(in.Flow) + "\x00" + in.Key
		ex := m.exchanges[id]
		switch {
		case ex != nil && ex.hash == in.ContentHash:
			out[i] = refbridge.Intake{ExchangeID: ex.id, Outcome: refbridge.IntakeDuplicate}
			continue
		case ex == nil:
			m.seq++
			ex = &memExchange{id: fmt.Sprintf("ex-%06d", m.seq)}
			m.exchanges[id] = ex
			out[i] = refbridge.Intake{ExchangeID: ex.id, Outcome: refbridge.IntakeAccepted}
		default:
			out[i] = refbridge.Intake{ExchangeID: ex.id, Outcome: refbridge.IntakeUpdated}
		}
		if in.State == refbridge.StateRejected {
			out[i].Outcome = refbridge.IntakeRejected
		}
		ex.hash, ex.state, ex.payload, ex.problems = in.ContentHash, in.State, slices.Clone(in.Payload), in.Problems
		ex.versions++
	}
	return out, nil
}

// contractViolations returns the calls refused as out of contract.
func (m *memInbox) contractViolations() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.violations)
}

// reset forgets everything stored.
func (m *memInbox) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.exchanges, m.seq, m.violations = map[string]*memExchange{}, 0, nil
}

// get returns the exchange stored for flow and key, or nil.
func (m *memInbox) get(flow refbridge.Flow, key string) *memExchange {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exchanges[string(flow)+"\x00"+key]
}

func (m *memInbox) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.exchanges)
}

// recordingInbox wraps any Inbox and records the calls that succeeded, so
// tests can assert "never called" and "nothing stored" whatever the Inbox.
type recordingInbox struct {
	Inbox
	mu     sync.Mutex
	calls  int
	stored []refbridge.Inbound
}

func (r *recordingInbox) Receive(ctx context.Context, items []refbridge.Inbound) ([]refbridge.Intake, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	out, err := r.Inbox.Receive(ctx, items)
	if err == nil {
		r.mu.Lock()
		r.stored = append(r.stored, items...)
		r.mu.Unlock()
	}
	return out, err
}

func (r *recordingInbox) snapshot() (calls int, stored []refbridge.Inbound) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, slices.Clone(r.stored)
}

// failingInbox fails every call with err, storing nothing.
type failingInbox struct{ err error }

func (f failingInbox) Receive(context.Context, []refbridge.Inbound) ([]refbridge.Intake, error) {
	return nil, f.err
}

// testValidator is a tiny profile: an intervention needs a family name and a
// service type from a short list; rows of one intervention that differ only
// in the language or specific-need join fold into one; a decision needs a
// known review decision.
type testValidator struct{}

func (testValidator) Interventions(rows []refbridge.Intervention) ([]refbridge.Intervention, [][]refbridge.Problem) {
	var out []refbridge.Intervention
	var probs [][]refbridge.Problem
	for _, r := range rows {
		if slices.ContainsFunc(out, func(o refbridge.Intervention) bool { return sameBeyondJoins(o, r) }) {
			continue
		}
		out = append(out, r)
		var ps []refbridge.Problem
		if strings.TrimSpace(r.FamilyName) == "" {
			ps = append(ps, refbridge.Problem{Field: "individuals.progres_familyname", Rule: "required", Detail: "is required by the profile and is missing or empty"})
		}
		switch r.InterventionType {
		case "Alternative Care", "BID", "BIA", "Family Tracing and Reunification":
		default:
			ps = append(ps, refbridge.Problem{Field: "interventiontype.progres_description", Rule: "unknown_code",
				Detail: fmt.Sprintf("intervention type %q is not in the profile's service table", r.InterventionType)})
		}
		probs = append(probs, ps)
	}
	return out, probs
}

// sameBeyondJoins reports whether a and b differ only in the join fields.
func sameBeyondJoins(a, b refbridge.Intervention) bool {
	for _, iv := range []*refbridge.Intervention{&a, &b} {
		iv.Language, iv.LanguageReadLevel, iv.LanguageWriteLevel, iv.LanguageSpeakLevel = nil, "", "", ""
		iv.LanguageComprehension, iv.LanguageMotherTongue = "", ""
		iv.SpecificNeedCategory, iv.SpecificNeedSubcategory, iv.SpecificNeedCode, iv.SpecificNeedSubcode = nil, nil, "", ""
	}
	return reflect.DeepEqual(a, b)
}

func (testValidator) Decision(d refbridge.ReferralDecision) []refbridge.Problem {
	switch d.ReviewDecision {
	case "125080000", "125080001":
		return nil
	}
	return []refbridge.Problem{{Field: "progres_reviewdecision", Rule: "unknown_code", Detail: "the review decision code is not in the profile's table"}}
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

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a log handler.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a Server under test with its collaborators.
type harness struct {
	srv     *Server
	inbox   *recordingInbox
	trigger *triggerRecorder
	logs    *syncBuffer
}

// reset forgets the recorded calls, triggers and logs.
func (h *harness) reset() {
	h.inbox.mu.Lock()
	h.inbox.calls, h.inbox.stored = 0, nil
	h.inbox.mu.Unlock()
	h.trigger.mu.Lock()
	h.trigger.ids = nil
	h.trigger.mu.Unlock()
	h.logs.mu.Lock()
	h.logs.buf.Reset()
	h.logs.mu.Unlock()
}

// newHarness builds a Server over inbox with both test tokens, the webhook
// key, the test validator and a JSON log captured in memory. mod may adjust
// the Config.
func newHarness(t testing.TB, inbox Inbox, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{inbox: &recordingInbox{Inbox: inbox}, trigger: &triggerRecorder{}, logs: &syncBuffer{}}
	cfg := Config{
		Tokens:      []string{tokenA},
		WebhookKeys: []string{webhookKey},
		Inbox:       h.inbox,
		Validator:   testValidator{},
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
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
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
