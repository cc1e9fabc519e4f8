package dtptest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/fault"
)

// fixtures is the repository's byte-identical copy of shared/fixtures.
const fixtures = "../../testdata/fixtures"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// edit returns the fixture with keys set (nil value = JSON null) and removed.
func edit(t *testing.T, name string, set map[string]any, remove ...string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	for _, k := range remove {
		delete(m, k)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apim is the gateway's answer body.
type apim struct {
	StatusCode int                 `json:"statusCode"`
	Message    string              `json:"message"`
	Problems   []refbridge.Problem `json:"problems"`
}

// rawClient talks to the simulator without the dtp package, presenting the
// PKI's client certificate unless cert is false.
func rawClient(t *testing.T, sim *dtptest.Sim, cert bool) *http.Client {
	t.Helper()
	cfg, err := sim.PKI().ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	if !cert {
		cfg.Certificates = nil
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

type post struct {
	method, path, key, contentType string
	body                           []byte
}

func (p post) do(t *testing.T, c *http.Client, sim *dtptest.Sim) (*http.Response, apim, []byte) {
	t.Helper()
	if p.method == "" {
		p.method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), p.method, sim.URL+p.path, bytes.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p.key != "" {
		req.Header.Set(dtptest.HeaderSubscriptionKey, p.key)
	}
	if p.contentType == "" {
		p.contentType = "application/json"
	}
	req.Header.Set("Content-Type", p.contentType)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.method, p.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body apim
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("answer is not an APIM envelope: %s", raw)
	}
	if body.StatusCode != resp.StatusCode {
		t.Errorf("envelope statusCode %d, HTTP %d", body.StatusCode, resp.StatusCode)
	}
	return resp, body, raw
}

func TestPKI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, err := dtptest.NewPKI(dir, "sim.example.org", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	load := func(file string) *x509.Certificate {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatalf("%s: no PEM", file)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := x509.NewCertPool()
	roots.AddCert(load(pki.CAFile))
	server := load(pki.ServerCertFile)
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "sim.example.org", "10.1.2.3"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	client := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := load(pki.ClientCertFile).Verify(client); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := load(pki.UntrustedCertFile).Verify(client); err == nil {
		t.Error("the untrusted client certificate verifies against the trusted CA")
	}
	for _, f := range []string{pki.ServerKeyFile, pki.ClientKeyFile, pki.UntrustedKeyFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	certFile, keyFile, err := pki.IssueClient("second")
	if err != nil {
		t.Fatal(err)
	}
	if c := load(certFile); c.Subject.CommonName != "second" {
		t.Errorf("issued CN %q", c.Subject.CommonName)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("issued pair: %v", err)
	}
	if _, _, err := pki.IssueClient("second"); err == nil {
		t.Error("issuing the same name twice overwrote files")
	}
	if _, _, err := pki.IssueClient("../escape"); err == nil {
		t.Error("a name with a path separator was accepted")
	}
}

// TestGateway checks the APIM layer: key, certificate policy, unknown
// operations. Nothing it refuses reaches the backend's record.
func TestGateway(t *testing.T) {
	t.Parallel()
	valid := readFixture(t, "dtp-decision-outgoing.json")
	tests := []struct {
		name    string
		check   dtptest.CertCheck
		cert    bool
		req     post
		status  int
		message string // part of the APIM message
	}{
		{"accepted", dtptest.CertAtHandshake, true, post{path: dtptest.PathDecision, key: dtptest.DefaultSubscriptionKey, body: valid}, 200, "Accepted"},
		{"missing key", dtptest.CertAtHandshake, true, post{path: dtptest.PathDecision, body: valid}, 401, "missing subscription key"},
		{"invalid key", dtptest.CertAtHandshake, true, post{path: dtptest.PathDecision, key: "nope", body: valid}, 401, "invalid subscription key"},
		{"unknown operation", dtptest.CertAtHandshake, true, post{path: "/ReceiveSomethingElse", key: dtptest.DefaultSubscriptionKey, body: valid}, 404, "Resource not found"},
		{"wrong method", dtptest.CertAtHandshake, true, post{method: http.MethodGet, path: dtptest.PathDecision, key: dtptest.DefaultSubscriptionKey}, 404, "Resource not found"},
		{"policy: no certificate", dtptest.CertAtGateway, false, post{path: dtptest.PathReferral, key: dtptest.DefaultSubscriptionKey, body: valid}, 401, "client certificate"},
		{"policy: key checked first", dtptest.CertAtGateway, false, post{path: dtptest.PathReferral, body: valid}, 401, "missing subscription key"},
		{"policy: certificate accepted", dtptest.CertAtGateway, true, post{path: dtptest.PathDecision, key: dtptest.DefaultSubscriptionKey, body: valid}, 200, "Accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := dtptest.NewServer(t, dtptest.Options{CertCheck: tt.check})
			resp, body, _ := tt.req.do(t, rawClient(t, sim, tt.cert), sim)
			if resp.StatusCode != tt.status || !strings.Contains(body.Message, tt.message) {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, body.Message, tt.status, tt.message)
			}
			want := 0
			if tt.status == 200 {
				want = 1
			}
			if n := len(sim.Received()); n != want {
				t.Errorf("backend received %d messages, want %d", n, want)
			}
		})
	}
}

// TestHandshakeRequiresCertificate: in the default mode a client without a
// certificate gets no HTTP answer at all.
func TestHandshakeRequiresCertificate(t *testing.T) {
	t.Parallel()
	sim := dtptest.NewServer(t, dtptest.Options{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, sim.DecisionURL(), strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawClient(t, sim, false).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d without a client certificate", resp.StatusCode)
	}
	if !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("error %v: want the TLS alert certificate_required", err)
	}
}

// TestNoPKIFailsClosed: the handler served without TLS refuses everything.
func TestNoPKIFailsClosed(t *testing.T) {
	t.Parallel()
	sim := dtptest.New(dtptest.Options{})
	if sim.TLSConfig() != nil {
		t.Error("TLSConfig without a PKI")
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.URL = srv.URL
	resp, body, _ := post{path: dtptest.PathDecision, key: dtptest.DefaultSubscriptionKey, body: readFixture(t, "dtp-decision-outgoing.json")}.do(t, srv.Client(), sim)
	if resp.StatusCode != 401 || !strings.Contains(body.Message, "client certificate") {
		t.Errorf("answer %d %q, want 401 about the client certificate", resp.StatusCode, body.Message)
	}
	if len(sim.Received()) != 0 {
		t.Error("recorded a message that came without TLS")
	}
}

// TestValidation: each message shape rule answers 400 naming the field, and
// never quotes the refused value.
func TestValidation(t *testing.T) {
	t.Parallel()
	const (
		ref     = "dtp-outbound-referral.json"
		success = "dtp-callback-success.json"
		failure = "dtp-callback-failure.json"
		dec     = "dtp-decision-outgoing.json"
	)
	type want struct{ field, rule string }
	tests := []struct {
		name        string
		path        string
		body        []byte
		contentType string
		want        []want // nil = accepted
		value       string // a refused value the answer must not quote
	}{
		{"referral fixture", dtptest.PathReferral, readFixture(t, ref), "", nil, ""},
		{"referral with nulls and without optional keys", dtptest.PathReferral,
			edit(t, ref, map[string]any{"name_middle": nil, "telephone_current": nil, "language": nil}, "date_of_birth", "sex", "name_first"), "", nil, ""},
		{"referral unknown key", dtptest.PathReferral, edit(t, ref, map[string]any{"protection_concerns": "DS-LBM"}), "", []want{{"protection_concerns", "unknown_field"}}, "DS-LBM"},
		{"referral without id", dtptest.PathReferral, edit(t, ref, nil, "id"), "", []want{{"id", "required"}}, ""},
		{"referral id not case#suffix", dtptest.PathReferral, edit(t, ref, map[string]any{"id": "c0c0-secret-id"}), "", []want{{"id", "format"}}, "c0c0-secret-id"},
		{"referral wrong request_type", dtptest.PathReferral, edit(t, ref, map[string]any{"request_type": "ReceiveDecisionOutgoingReferral"}), "", []want{{"request_type", "unknown_code"}}, ""},
		{"referral without service_type", dtptest.PathReferral, edit(t, ref, nil, "service_type"), "", []want{{"service_type", "required"}}, ""},
		{"referral empty individual number", dtptest.PathReferral, edit(t, ref, map[string]any{"unhcr_individual_no": ""}), "", []want{{"unhcr_individual_no", "required"}}, ""},
		{"referral proGres sex code", dtptest.PathReferral, edit(t, ref, map[string]any{"sex": "125080000"}), "", []want{{"sex", "unknown_code"}}, "125080000"},
		{"referral date-time birth date", dtptest.PathReferral, edit(t, ref, map[string]any{"date_of_birth": "2014-03-15T00:00:00Z"}), "", []want{{"date_of_birth", "format"}}, "2014-03-15"},
		{"referral number for a string", dtptest.PathReferral, edit(t, ref, map[string]any{"name_middle": 7}), "", []want{{"name_middle", "type"}}, ""},
		{"referral null for a required string", dtptest.PathReferral, edit(t, ref, map[string]any{"email": nil}), "", []want{{"email", "type"}}, ""},
		{"referral several problems, sorted", dtptest.PathReferral, edit(t, ref, map[string]any{"sex": "x"}, "phone"), "", []want{{"phone", "required"}, {"sex", "unknown_code"}}, ""},
		{"not JSON", dtptest.PathReferral, []byte(`{"id":`), "", []want{{"body", "json"}}, ""},
		{"JSON array", dtptest.PathDecision, []byte(`[]`), "", []want{{"body", "json"}}, ""},
		{"not declared JSON", dtptest.PathDecision, readFixture(t, dec), "text/plain", []want{{"Content-Type", "format"}}, ""},

		{"success callback fixture", dtptest.PathDecision, readFixture(t, success), "", nil, ""},
		{"failure callback fixture", dtptest.PathDecision, readFixture(t, failure), "", nil, ""},
		{"decision fixture", dtptest.PathDecision, readFixture(t, dec), "application/json; charset=utf-8", nil, ""},
		{"rejection", dtptest.PathDecision, edit(t, dec, map[string]any{"status": "rejected", "closure_reason": "Synthetic reason"}), "", nil, ""},
		{"status in the wrong case", dtptest.PathDecision, edit(t, dec, map[string]any{"status": "Acknowledged"}), "", []want{{"status", "unknown_code"}}, "Acknowledged"},
		{"success callback with a request_type", dtptest.PathDecision, edit(t, success, map[string]any{"request_type": "Feedback"}), "", []want{{"request_type", "mismatch"}}, ""},
		{"failure callback without Feedback", dtptest.PathDecision, edit(t, failure, nil, "request_type"), "", []want{{"request_type", "mismatch"}}, ""},
		{"failure callback without reason", dtptest.PathDecision, edit(t, failure, nil, "closure_reason"), "", []want{{"closure_reason", "required"}}, ""},
		{"rejection without reason", dtptest.PathDecision, edit(t, dec, map[string]any{"status": "rejected", "closure_reason": ""}), "", []want{{"closure_reason", "required"}}, ""},
		{"decision without case_id key", dtptest.PathDecision, edit(t, dec, nil, "case_id"), "", []want{{"case_id", "required"}}, ""},
		{"decision with null case", dtptest.PathDecision, edit(t, dec, map[string]any{"case_id": nil, "primero_user": nil}), "", []want{{"case_id", "required"}, {"primero_user", "required"}}, ""},
		{"status without intervention number", dtptest.PathDecision, edit(t, dec, map[string]any{"progres_interventionnumber": ""}), "", []want{{"progres_interventionnumber", "required"}}, ""},
		{"referral sent to the status operation", dtptest.PathDecision, readFixture(t, ref), "", []want{{"address_current", "unknown_field"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := dtptest.NewServer(t, dtptest.Options{})
			resp, body, raw := post{path: tt.path, key: dtptest.DefaultSubscriptionKey, body: tt.body, contentType: tt.contentType}.do(t, rawClient(t, sim, true), sim)
			var got []want
			for _, p := range body.Problems {
				got = append(got, want{p.Field, p.Rule})
			}
			if tt.want == nil {
				if resp.StatusCode != 200 {
					t.Fatalf("refused %d: %s", resp.StatusCode, raw)
				}
			} else {
				if resp.StatusCode != 400 {
					t.Fatalf("answered %d, want 400", resp.StatusCode)
				}
				for _, w := range tt.want {
					if !slices.Contains(got, w) {
						t.Errorf("problems %v: want %v", got, w)
					}
				}
				if len(got) == 0 || !strings.Contains(body.Message, got[0].field) {
					t.Errorf("message %q does not name the first problem of %v", body.Message, got)
				}
			}
			if tt.value != "" && bytes.Contains(raw, []byte(tt.value)) {
				t.Errorf("answer quotes the refused value: %s", raw)
			}
			msgs := sim.Received()
			if len(msgs) != 1 || msgs[0].Accepted() != (tt.want == nil) || !bytes.Equal(msgs[0].Body, tt.body) {
				t.Errorf("recorded %+v", msgs)
			}
		})
	}
}

// TestRecording: the record keeps arrival order, decoded bodies, time and
// client certificate, and counts natural keys so doubles show.
func TestRecording(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 9, 10, 0, 0, 0, time.UTC)
	sim := dtptest.NewServer(t, dtptest.Options{Now: func() time.Time { return at }})
	c := rawClient(t, sim, true)
	send := func(path string, body []byte) {
		t.Helper()
		if resp, _, raw := (post{path: path, key: dtptest.DefaultSubscriptionKey, body: body}).do(t, c, sim); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
	}
	ref := readFixture(t, "dtp-outbound-referral.json")
	dec := readFixture(t, "dtp-decision-outgoing.json")
	send(dtptest.PathReferral, ref)
	send(dtptest.PathDecision, readFixture(t, "dtp-callback-success.json"))
	send(dtptest.PathDecision, dec)
	send(dtptest.PathReferral, ref)
	send(dtptest.PathDecision, dec)

	msgs := sim.Received()
	kinds := make([]dtptest.Kind, len(msgs))
	for i, m := range msgs {
		kinds[i] = m.Kind
		if !m.At.Equal(at) || m.ClientCert != "refbridge" {
			t.Errorf("message %d at %v from %q", i, m.At, m.ClientCert)
		}
	}
	if want := []dtptest.Kind{"referral", "status", "status", "referral", "status"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	var wantRef refbridge.DTPReferral
	if err := json.Unmarshal(ref, &wantRef); err != nil {
		t.Fatal(err)
	}
	if refs := sim.Referrals(); len(refs) != 2 || !reflect.DeepEqual(refs[0], wantRef) {
		t.Errorf("referrals %+v", refs)
	}
	if n := len(sim.Statuses()); n != 3 {
		t.Errorf("%d statuses, want 3", n)
	}
	id := wantRef.ID
	if n := sim.ReferralCounts()[id]; n != 2 {
		t.Errorf("referral %s counted %d, want 2", id, n)
	}
	counts := sim.StatusCounts()
	if counts[dtptest.StatusKey{InterventionNumber: "TST-24-PRTITV-0000001", Status: "acknowledged"}] != 2 ||
		counts[dtptest.StatusKey{InterventionNumber: "TST-24-PRTITV-0000001", Status: "Pending Acknowledgement"}] != 1 {
		t.Errorf("status counts %v", counts)
	}
	want := []string{"referral " + id + " ×2", `status TST-24-PRTITV-0000001 "acknowledged" ×2`}
	if d := sim.Doubles(); !slices.Equal(d, want) {
		t.Errorf("doubles %q, want %q", d, want)
	}
	sim.Reset()
	if len(sim.Received()) != 0 || len(sim.Doubles()) != 0 {
		t.Error("Reset kept messages")
	}
}

// TestFaultAnswers: injected statuses come in APIM's envelope with
// Retry-After, and a faulted request is not recorded.
func TestFaultAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		retryAfter time.Duration
		header     string
		message    string
	}{
		{429, 3 * time.Second, "3", "Rate limit is exceeded. Try again in 3 seconds."},
		{503, 2 * time.Second, "2", "Service Unavailable"},
		{500, time.Second, "", "Internal Server Error"},
		{401, 0, "", "invalid subscription key"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			sim := dtptest.NewServer(t, dtptest.Options{Seed: 7})
			sim.Faults().Set("*", fault.Rule{ErrorRate: 1, Statuses: []int{tt.status}, RetryAfter: tt.retryAfter})
			resp, body, _ := post{path: dtptest.PathReferral, key: dtptest.DefaultSubscriptionKey, body: readFixture(t, "dtp-outbound-referral.json")}.do(t, rawClient(t, sim, true), sim)
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.header || !strings.Contains(body.Message, tt.message) {
				t.Errorf("answer %d Retry-After %q %q; want %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body.Message, tt.status, tt.header, tt.message)
			}
			if sim.Faults().Injected(dtptest.EndpointReferral) != 1 || len(sim.Received()) != 0 {
				t.Errorf("injected %d, recorded %d", sim.Faults().Injected(dtptest.EndpointReferral), len(sim.Received()))
			}
		})
	}
}

// TestPostToBridge: the simulator, as proGres, posts batches to a plain
// bridge inbox with the bearer token and returns the bridge's answer.
func TestPostToBridge(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, auth, contentType string
		body                      []byte
	}
	tests := []struct {
		name    string
		fixture string
		token   string
		post    func(*dtptest.Sim, string, string, []byte) (*dtptest.Reply, error)
	}{
		{"interventions", "dtp-interventions-inbound.json", "bridge-token-1", func(s *dtptest.Sim, url, token string, raw []byte) (*dtptest.Reply, error) {
			var b refbridge.InterventionBatch
			if err := json.Unmarshal(raw, &b); err != nil {
				return nil, err
			}
			return s.PostInterventions(t.Context(), url, token, b)
		}},
		{"decisions", "dtp-decision-inbound.json", "bridge-token-2", func(s *dtptest.Sim, url, token string, raw []byte) (*dtptest.Reply, error) {
			var b refbridge.DecisionBatch
			if err := json.Unmarshal(raw, &b); err != nil {
				return nil, err
			}
			return s.PostDecisions(t.Context(), url, token, b)
		}},
		{"raw without a token", "dtp-decision-inbound.json", "", func(s *dtptest.Sim, url, token string, raw []byte) (*dtptest.Reply, error) {
			return s.PostJSON(t.Context(), url, token, raw)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan seen, 1)
			bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- seen{r.Method, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusAccepted)
				io.WriteString(w, `{"accepted":true}`)
			}))
			t.Cleanup(bridge.Close)
			sim := dtptest.New(dtptest.Options{})
			raw := readFixture(t, tt.fixture)
			reply, err := tt.post(sim, bridge.URL+"/inbox/dtp", tt.token, raw)
			if err != nil {
				t.Fatal(err)
			}
			if reply.Status != http.StatusAccepted || string(reply.Body) != `{"accepted":true}` {
				t.Errorf("reply %d %s", reply.Status, reply.Body)
			}
			s := <-got
			wantAuth := ""
			if tt.token != "" {
				wantAuth = "Bearer " + tt.token
			}
			if s.method != http.MethodPost || s.auth != wantAuth || s.contentType != "application/json" {
				t.Errorf("bridge saw %s, Authorization %q, Content-Type %q", s.method, s.auth, s.contentType)
			}
			var want, have any
			if json.Unmarshal(raw, &want) != nil || json.Unmarshal(s.body, &have) != nil || !reflect.DeepEqual(want, have) {
				t.Errorf("bridge received\n%s\nwant\n%s", s.body, raw)
			}
		})
	}
}
