// Package dtp is refbridge's client for UNHCR's DTP, the Azure API Management
// gateway in front of proGres v4 (contract: shared/contracts/progres-dtp.md
// §2.7–2.9, §3.3–3.4, §6.2). It sends two messages:
//
//   - a referral to UNHCR (flow F2) to the ReceiveIncomingReferral URL;
//   - an intervention status to the ReceiveDecisionOutgoingReferral URL: the
//     intake callback of flow F1 (Pending Acknowledgement / Delivery Fail) and
//     a case worker's decision (F1d: acknowledged / rejected).
//
// Every call carries the APIM subscription key (Ocp-Apim-Subscription-Key) and
// presents a client certificate (mutual TLS). Both can be rotated while the
// client runs: SetSubscriptionKey, and Reload for the certificate files.
//
// DTP does not document whether it deduplicates, so a message is retried
// in-line only when DTP provably did not process it (no connection, 429,
// 503); any other failure goes back to the caller, whose outbox decides.
// All HTTP goes through peerhttp, which also classifies a TLS alert refusing
// the client certificate as EUnauthorized.
//
// Nothing here logs, and no error carries a value from a message or a byte
// of key material: only ids, codes, field names and file paths.
package dtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"refbridge"
	"refbridge/egress"
	"refbridge/peerhttp"
)

// peerName tags every error this client returns.
const peerName = "dtp"

// HeaderSubscriptionKey is APIM's subscription key header.
const HeaderSubscriptionKey = "Ocp-Apim-Subscription-Key"

// Config sets up a Client. ReferralURL, DecisionURL, SubscriptionKey,
// CertFile and KeyFile are required.
type Config struct {
	// ReferralURL is DTP's ReceiveIncomingReferral endpoint (flow F2).
	ReferralURL string
	// DecisionURL is DTP's ReceiveDecisionOutgoingReferral endpoint (flow F1
	// callbacks and F1d decisions).
	DecisionURL string
	// SubscriptionKey is the APIM subscription key; change it at run time
	// with Client.SetSubscriptionKey.
	SubscriptionKey string
	// CertFile and KeyFile are the PEM client certificate and private key
	// DTP knows by thumbprint; re-read by Client.Reload.
	CertFile, KeyFile string
	// CAFile is a PEM bundle of the CAs trusted for DTP's server
	// certificate. Empty means the system roots (APIM's public certificate).
	// It is read once: a CA change needs a restart.
	CAFile string
	// Timeout bounds one HTTP attempt; 0 means peerhttp's default (30s).
	Timeout time.Duration
	// Retry is the in-line retry policy; the zero value means
	// refbridge.DefaultRetryPolicy().
	Retry refbridge.RetryPolicy
	// Sleep replaces the wait between retries (tests); nil waits for real.
	Sleep func(ctx context.Context, d time.Duration) error
	// Observer is told about every HTTP attempt (metrics); nil observes nothing.
	Observer peerhttp.Observer
}

// Client sends messages to DTP. It is safe for concurrent use.
type Client struct {
	referralURL string
	decisionURL string
	pair        *keyPair
	key         atomic.Pointer[string]
	http        *peerhttp.Client
}

// New checks cfg, reads the certificate, key and CA files and returns a
// client. It makes no request. A configuration error is an EInvalid
// *refbridge.Error whose Problems (and message) name each bad field and file.
func New(cfg Config) (*Client, error) {
	var problems []refbridge.Problem
	bad := func(field, rule, detail string) {
		problems = append(problems, refbridge.Problem{Field: field, Rule: rule, Detail: detail})
	}
	checkURL := func(field, raw string) {
		u, err := url.Parse(raw)
		switch {
		case raw == "":
			bad(field, "required", "the DTP endpoint URL is required")
		case err != nil || u.Scheme != "https" || u.Host == "":
			// Plain HTTP would send the subscription key in clear and no
			// client certificate at all.
			bad(field, "invalid", "must be an absolute https URL")
		case u.User != nil || u.Fragment != "":
			bad(field, "invalid", "must not carry credentials or a fragment")
		}
	}
	checkURL("referral_url", cfg.ReferralURL)
	checkURL("decision_url", cfg.DecisionURL)
	if cfg.SubscriptionKey == "" {
		bad("subscription_key", "required", "the APIM subscription key is required")
	}
	if cfg.Timeout < 0 {
		bad("timeout", "invalid", "must not be negative")
	}
	if r := cfg.Retry; r.MaxAttempts < 0 || r.BaseDelay < 0 || r.MaxDelay < 0 || r.MaxRetryAfter < 0 {
		bad("retry", "invalid", "attempts and delays must not be negative")
	}
	pair, p := loadKeyPair(cfg.CertFile, cfg.KeyFile)
	problems = append(problems, p...)
	roots, p := loadCA(cfg.CAFile)
	problems = append(problems, p...)
	if len(problems) > 0 {
		return nil, configError("invalid DTP client configuration", problems)
	}

	c := &Client{referralURL: cfg.ReferralURL, decisionURL: cfg.DecisionURL, pair: pair}
	c.key.Store(&cfg.SubscriptionKey)
	c.http = peerhttp.New(peerhttp.Config{
		Peer:    peerName,
		Timeout: cfg.Timeout,
		TLS: &tls.Config{
			MinVersion:           tls.VersionTLS12,
			RootCAs:              roots,
			GetClientCertificate: pair.GetClientCertificate,
		},
		Retry:       cfg.Retry,
		DecodeError: DecodeError,
		Sleep:       cfg.Sleep,
		Observer:    cfg.Observer,
	})
	return c, nil
}

// SendReferral posts a referral to UNHCR (flow F2) to ReceiveIncomingReferral.
// ref is the EgressFilter's output; a Message that did not pass it is
// refused unsent. Its id, the org-referral id DTP echoes back with its
// decision, is required.
func (c *Client) SendReferral(ctx context.Context, ref egress.Message[refbridge.DTPReferral]) error {
	const op = "send referral"
	if err := ref.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	id := ref.Value().ID
	if id == "" {
		problems := []refbridge.Problem{{Field: "id", Rule: "required", Detail: "the org-referral id is the referral's key in DTP"}}
		return &refbridge.Error{Code: refbridge.EInvalid, Peer: peerName, Message: op + ": " + problemFields(problems), Problems: problems}
	}
	return post(ctx, c, op+" "+id, c.referralURL, ref)
}

// SendInterventionStatus posts an intake callback or a decision about a
// proGres intervention to ReceiveDecisionOutgoingReferral (flows F1, F1d).
// st is the EgressFilter's output; a Message that did not pass it is
// refused unsent.
func (c *Client) SendInterventionStatus(ctx context.Context, st egress.Message[refbridge.InterventionStatus]) error {
	const op = "send intervention status"
	if err := st.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	v := st.Value()
	var problems []refbridge.Problem
	if v.InterventionNumber == "" {
		problems = append(problems, refbridge.Problem{Field: "progres_interventionnumber", Rule: "required", Detail: "with status, the message's key in DTP"})
	}
	if v.Status == "" {
		problems = append(problems, refbridge.Problem{Field: "status", Rule: "required", Detail: "with the intervention number, the message's key in DTP"})
	}
	if len(problems) > 0 {
		return &refbridge.Error{Code: refbridge.EInvalid, Peer: peerName, Message: op + ": " + problemFields(problems), Problems: problems}
	}
	return post(ctx, c, fmt.Sprintf("%s %s %q", op, v.InterventionNumber, v.Status), c.decisionURL, st)
}

// SetSubscriptionKey replaces the APIM subscription key, for key rotation.
// Calls in flight finish with the key they started with; retries use the
// new one.
func (c *Client) SetSubscriptionKey(key string) error {
	if key == "" {
		return &refbridge.Error{Code: refbridge.EInvalid, Peer: peerName, Message: "set subscription key: the key is required"}
	}
	c.key.Store(&key)
	return nil
}

// Reload re-reads the client certificate and key files (certificate
// rotation, e.g. on SIGHUP) and closes idle connections, so the next request
// presents the new certificate. On error the certificate in use is kept.
func (c *Client) Reload() error {
	if err := c.pair.Reload(); err != nil {
		return err
	}
	c.http.CloseIdleConnections()
	return nil
}

// post sends one message with RetryUnsent: DTP's idempotency is unknown, so
// only a message DTP provably did not process is sent again in-line. msg is
// the body as the EgressFilter sealed it.
func post[T egress.Body](ctx context.Context, c *Client, op, url string, msg egress.Message[T]) error {
	body, err := msg.MarshalJSON()
	if err != nil {
		return &refbridge.Error{Code: refbridge.EInternal, Peer: peerName, Message: op + ": encode", Err: err}
	}
	// DTP's success body is not documented; only the 2xx status counts.
	_, err = c.http.Do(ctx, peerhttp.Request{
		Op:        op,
		Method:    http.MethodPost,
		URL:       url,
		Body:      body,
		Retry:     peerhttp.RetryUnsent,
		Authorize: c.authorize,
	})
	return err
}

// authorize runs before every attempt, so a rotated key is used on retries.
func (c *Client) authorize(r *http.Request) error {
	r.Header.Set(HeaderSubscriptionKey, *c.key.Load())
	return nil
}

// codeLike accepts field and rule names a peer reports; anything else (a
// sentence, a value) is not copied into an error.
var codeLike = regexp.MustCompile(`^[A-Za-z0-9_.\[\]-]{1,64}$`)

// DecodeError reads DTP's error answers for peerhttp. APIM answers in its
// envelope {"statusCode":401,"message":"Access denied due to invalid
// subscription key. …"}. The error code comes from the HTTP status alone
// (401 unauthorized, 403 forbidden, 429 rate_limited with Retry-After, …);
// APIM's sentence is not copied, because errors are logged and the rule is
// IDs and codes only, and because callers branch on the code, never on text.
// Field and rule names a 400 reports under "problems" are kept.
func DecodeError(status int, _ http.Header, body []byte) *refbridge.Error {
	e := &refbridge.Error{}
	var env struct {
		StatusCode int                 `json:"statusCode"`
		Problems   []refbridge.Problem `json:"problems"`
	}
	if json.Unmarshal(body, &env) != nil || env.StatusCode == 0 {
		return e
	}
	switch status {
	case http.StatusUnauthorized:
		e.Message = "the DTP gateway refused the subscription key or the client certificate"
	case http.StatusForbidden:
		e.Message = "the DTP gateway refused access for this subscription or client certificate"
	}
	for _, p := range env.Problems {
		if codeLike.MatchString(p.Field) && codeLike.MatchString(p.Rule) {
			e.Problems = append(e.Problems, refbridge.Problem{Field: p.Field, Rule: p.Rule, Detail: "refused by DTP"})
		}
	}
	if len(e.Problems) > 0 && e.Message == "" {
		e.Message = "DTP refused fields: " + problemFields(e.Problems)
	}
	return e
}

// loadCA reads the CA bundle; an empty path means the system roots (nil).
func loadCA(path string) (*x509.CertPool, []refbridge.Problem) {
	if path == "" {
		return nil, nil
	}
	data, p := readFile("ca_file", "CA certificate", path)
	if p != nil {
		return nil, p
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, []refbridge.Problem{{Field: "ca_file", Rule: "invalid", Detail: fmt.Sprintf("%q holds no PEM certificate", path)}}
	}
	return pool, nil
}

// configError builds the EInvalid error for bad configuration. The message
// repeats every problem so that err.Error() alone tells the operator which
// field and file to fix.
func configError(msg string, problems []refbridge.Problem) *refbridge.Error {
	details := make([]string, len(problems))
	for i, p := range problems {
		details[i] = p.Field + ": " + p.Detail
	}
	return &refbridge.Error{Code: refbridge.EInvalid, Peer: peerName, Message: msg + ": " + strings.Join(details, "; "), Problems: problems}
}

func problemFields(problems []refbridge.Problem) string {
	fields := make([]string, len(problems))
	for i, p := range problems {
		fields[i] = p.Field + " " + p.Rule
	}
	return strings.Join(fields, ", ")
}
