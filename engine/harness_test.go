package engine_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"refbridge"
	"refbridge/dtp"
	"refbridge/dtp/dtptest"
	"refbridge/engine"
	"refbridge/mapping"
	"refbridge/primero"
	"refbridge/primero/primerotest"
	"refbridge/profile"
	"refbridge/server"
	"refbridge/store"
)

// Users of the simulated Primero the flows meet.
const (
	bridgeUser = "refbridge_api"
	caseWorker = "test_caseworker"
	unhcrUser  = "unhcr_cw"
)

// harness is the whole engine wired to both simulators and a real store,
// the same code path `refbridge serve` runs, on one machine.
type harness struct {
	t       *testing.T
	profile *profile.Profile
	db      *store.DB
	eng     *engine.Engine
	primero *primerotest.Sim
	dtp     *dtptest.Sim
	// bridge is the inbound API DTP posts to, on the same store.
	bridge *httptest.Server
	// queue works the engine's jobs; tests may insert jobs into it.
	queue *river.Client[*sql.Tx]
}

// bridgeToken is the bearer token the simulated DTP presents.
const bridgeToken = "test-inbound-token"

// harnessOption changes how newHarness sets up.
type harnessOption func(*harnessConfig)

type harnessConfig struct {
	profile   *profile.Profile
	metrics   engine.Metrics
	retention time.Duration
	// Clocks: the bridge's (engine, store and River), Primero's and DTP's;
	// nil is time.Now.
	bridgeNow, primeroNow, dtpNow func() time.Time
	retry                         refbridge.RetryPolicy
	rescueAfter                   time.Duration
	logger                        *slog.Logger
	pollOverlap                   time.Duration
}

// withClocks runs the bridge (engine, store and River's queue), the
// Primero simulator and the DTP simulator on the given clocks; nil keeps
// time.Now.
func withClocks(bridge, primero, dtp func() time.Time) harnessOption {
	return func(c *harnessConfig) { c.bridgeNow, c.primeroNow, c.dtpNow = bridge, primero, dtp }
}

// withRetry spaces the engine's attempts of one exchange by p.
func withRetry(p refbridge.RetryPolicy) harnessOption {
	return func(c *harnessConfig) { c.retry = p }
}

// withRescueAfter sets when River's rescuer takes a running job for stuck.
func withRescueAfter(d time.Duration) harnessOption {
	return func(c *harnessConfig) { c.rescueAfter = d }
}

// withLogger gives the engine l to log to.
func withLogger(l *slog.Logger) harnessOption {
	return func(c *harnessConfig) { c.logger = l }
}

// withRetention keeps finished exchanges' payloads for d (default 0).
func withRetention(d time.Duration) harnessOption {
	return func(c *harnessConfig) { c.retention = d }
}

// withPollOverlap sets how far before its cursor each poll starts again
// (default: the engine's).
func withPollOverlap(d time.Duration) harnessOption {
	return func(c *harnessConfig) { c.pollOverlap = d }
}

// withMetrics gives the engine m to report to.
func withMetrics(m engine.Metrics) harnessOption {
	return func(c *harnessConfig) { c.metrics = m }
}

// withProfile runs the engine under p instead of the Gambella profile.
func withProfile(p *profile.Profile) harnessOption {
	return func(c *harnessConfig) { c.profile = p }
}

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	ctx := context.Background()
	var hc harnessConfig
	for _, o := range opts {
		o(&hc)
	}
	p := hc.profile
	if p == nil {
		var err error
		if p, err = profile.Load("gambella"); err != nil {
			t.Fatal(err)
		}
	}
	psim := primerotest.NewServer(t, primerotest.Options{Seed: 1, RecordWrites: true, Now: hc.primeroNow})
	phone := "+000000000900"
	contact := func(name, full string) refbridge.User {
		return refbridge.User{UserName: name, FullName: full, Email: name + "@example.org", Phone: &phone, Position: "Test position"}
	}
	psim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: bridgeUser}, Password: "pw", Scope: primerotest.ScopeAll, Permissions: []string{primerotest.PermSyncExternal}})
	psim.AddUser(primerotest.UserSpec{User: contact(caseWorker, "Test Caseworker"), Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	psim.AddUser(primerotest.UserSpec{User: contact(unhcrUser, "UNHCR placeholder"), Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	psim.AddUser(primerotest.UserSpec{User: contact(p.Intake().Owner, "Intake focal point"), Password: "pw", Scope: primerotest.ScopeAll, AgencyUniqueID: "UNICEF"})
	fast := refbridge.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxRetryAfter: time.Second}
	pc, err := primero.New(primero.Config{BaseURL: psim.URL, UserName: bridgeUser, Password: "pw", Timeout: 2 * time.Second, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	dsim := dtptest.NewServer(t, dtptest.Options{Seed: 1, Now: hc.dtpNow})
	pki := dsim.PKI()
	dc, err := dtp.New(dtp.Config{ReferralURL: dsim.ReferralURL(), DecisionURL: dsim.DecisionURL(), SubscriptionKey: dtptest.DefaultSubscriptionKey,
		CertFile: pki.ClientCertFile, KeyFile: pki.ClientKeyFile, CAFile: pki.CAFile, Timeout: 2 * time.Second, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "refbridge.db"), Keys: keys, Retention: hc.retention, Now: hc.bridgeNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	retry := hc.retry
	if retry.MaxAttempts == 0 {
		retry = refbridge.RetryPolicy{MaxAttempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	}
	eng, err := engine.New(engine.Config{Profile: p, Store: db, Primero: pc, DTP: dc, Now: hc.bridgeNow,
		Retry: retry, PollInterval: time.Hour, PollOverlap: hc.pollOverlap, BreakerTimeout: 50 * time.Millisecond, Metrics: hc.metrics, Logger: hc.logger})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Tokens: []string{bridgeToken}, Inbox: db, Validator: engine.Validator{Profile: p}})
	if err != nil {
		t.Fatal(err)
	}
	bridge := httptest.NewServer(srv.Handler())
	t.Cleanup(bridge.Close)
	q, err := db.NewQueue(store.QueueConfig{Workers: eng.Workers(), MaxWorkers: 4, JobTimeout: 20 * time.Second, RescueAfter: hc.rescueAfter})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(stop)
	})
	h := &harness{t: t, profile: p, db: db, eng: eng, primero: psim, dtp: dsim, bridge: bridge, queue: q}
	return h
}

// fixture reads a synthetic message from the repository's test data.
func fixture[T any](t *testing.T, name string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// receiveInterventions has the simulated DTP post rows to the bridge's
// inbound API and returns the outcome it answered for each row.
func (h *harness) receiveInterventions(rows ...refbridge.Intervention) []refbridge.IntakeOutcome {
	h.t.Helper()
	reply, err := h.dtp.PostInterventions(context.Background(), h.bridge.URL+server.RouteInterventions, bridgeToken,
		refbridge.InterventionBatch{Interventions: rows, RequestType: refbridge.RequestTypeOutgoingReferral})
	return h.outcomes(reply, err)
}

// receiveDecisions has the simulated DTP post UNHCR's decisions.
func (h *harness) receiveDecisions(ds ...refbridge.ReferralDecision) []refbridge.IntakeOutcome {
	h.t.Helper()
	reply, err := h.dtp.PostDecisions(context.Background(), h.bridge.URL+server.RouteDecisions, bridgeToken,
		refbridge.DecisionBatch{Interventions: ds, RequestType: refbridge.RequestTypeIncomingReferralDecision})
	return h.outcomes(reply, err)
}

func (h *harness) outcomes(reply *dtptest.Reply, err error) []refbridge.IntakeOutcome {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
	if reply.Status != 200 {
		h.t.Fatalf("bridge answered %d: %s", reply.Status, reply.Body)
	}
	var answer struct {
		Results []struct {
			Outcome refbridge.IntakeOutcome `json:"outcome"`
		} `json:"results"`
	}
	if err := json.Unmarshal(reply.Body, &answer); err != nil {
		h.t.Fatal(err)
	}
	out := make([]refbridge.IntakeOutcome, len(answer.Results))
	for i, r := range answer.Results {
		out[i] = r.Outcome
	}
	return out
}

// waitFor waits until the exchange flow/key is in one of states.
func (h *harness) waitFor(flow refbridge.Flow, key string, states ...refbridge.ExchangeState) refbridge.Exchange {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last refbridge.Exchange
	for time.Now().Before(deadline) {
		ex, err := h.db.GetByKey(context.Background(), flow, key)
		if err == nil {
			last = ex
			for _, s := range states {
				if ex.State == s {
					return ex
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s %s: state %q reason %q (last error %q), want one of %v", flow, key, last.State, last.Reason, last.LastError, states)
	return last
}

func (h *harness) poll() {
	h.t.Helper()
	if _, err := h.eng.Poll(context.Background()); err != nil {
		h.t.Fatalf("poll: %v", err)
	}
}

// seedReferredCase creates, as a case worker would, a case with a service
// implemented by UNHCR and refers it to the UNHCR user; it returns the case
// record id, the service unique_id and the DTP org-referral id.
func (h *harness) seedReferredCase(individual string, consent bool) (string, string, string) {
	h.t.Helper()
	return h.seedCase(individual, consent, false)
}

// seedCase is seedReferredCase with the referral's consent override set
// as given (Primero accepts a referral without consent only with one).
func (h *harness) seedCase(individual string, consent, override bool) (string, string, string) {
	h.t.Helper()
	id := h.primero.SeedCase(map[string]any{
		"owned_by": caseWorker, "owned_by_agency_id": "UNICEF", "module_id": "primeromodule-cp", "status": "open",
		"name_first": "Testchild", "name_last": "Fixture", "date_of_birth": "2014-03-15", "sex": "female",
		"unhcr_individual_no": individual, "unhcr_id_no": "TST-24-00001", "language": []any{"language2"},
		"address_current": "Test Camp", "telephone_current": "+000000000001",
		"consent_for_services": consent, "disclosure_other_orgs": consent,
	})
	svc, err := h.primero.AddService(id, caseWorker, map[string]any{
		"service_type": "shelter", "service_implementing_agency": "UNHCR", "service_response_type": "service_provision",
		"service_response_day_time": "2024-05-08T10:00:00.000Z", "service_referral_notes": "Synthetic referral notes",
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.primero.ReferService(id, svc, caseWorker, unhcrUser, override); err != nil && (consent || override) {
		h.t.Fatal(err)
	}
	c := h.primero.Case(id)
	return id, svc, mapping.OrgReferralID(c["case_id"].(string), svc)
}
