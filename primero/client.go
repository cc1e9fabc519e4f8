// Package primero is refbridge's client for UNICEF Primero's REST API v2
// (contract: shared/contracts/primero-v2.md). It authenticates with HTTP Basic
// (every version) or a bearer token (≤v2.10), pages through cases and users,
// creates and patches cases idempotently, manages referrals, and turns every
// failure into a *refbridge.Error. All HTTP goes through peerhttp, so timeouts,
// context cancellation, in-line retries and Retry-After are handled there.
//
// Primero is lenient in ways that lose data silently; this client is not:
//   - a filter the API user may not read is ignored by Primero, so every
//     record returned by Cases is checked against every filter asked;
//   - an invalid referral status change answers 200 and changes nothing, so
//     UpdateReferral checks the status it gets back;
//   - `..B` date ranges are dropped, so an upper bound is always sent with a
//     lower bound.
//
// Nothing here logs, and no error message carries a value from a record: only
// ids, field names, status codes and fixed sentences.
package primero

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"refbridge"
	"refbridge/peerhttp"
)

// peerName tags every error this client returns.
const peerName = "primero"

// AuthMode selects how the client authenticates to Primero.
type AuthMode int

const (
	// AuthBasic sends HTTP Basic credentials on every request. It works on
	// every Primero v2 version and needs no session or CSRF token; it is the
	// default and the right choice for a bridge.
	AuthBasic AuthMode = iota
	// AuthToken logs in with POST /api/v2/tokens and sends the JWT as a
	// bearer token. Only Primero ≤ v2.10 (or IdP mode) issues tokens.
	AuthToken
)

// String returns the mode's name as written in configuration.
func (m AuthMode) String() string {
	switch m {
	case AuthBasic:
		return "basic"
	case AuthToken:
		return "token"
	}
	return fmt.Sprintf("AuthMode(%d)", int(m))
}

// Config sets up a Client. BaseURL, UserName and Password are required.
type Config struct {
	// BaseURL is the Primero root, e.g. https://cpims.example.org; the
	// client appends /api/v2/... to it.
	BaseURL string
	// UserName and Password are the API user's credentials; change them at
	// run time with Client.SetCredentials.
	UserName, Password string
	// Auth is the authentication mode; the zero value is AuthBasic.
	Auth AuthMode
	// Timeout bounds one HTTP attempt; 0 means peerhttp's default (30s).
	Timeout time.Duration
	// Retry is the in-line retry policy; the zero value means
	// refbridge.DefaultRetryPolicy().
	Retry refbridge.RetryPolicy

	// TLS is the client TLS configuration; nil uses system defaults.
	TLS *tls.Config
	// MaxResponseBytes bounds a response body; 0 means peerhttp's default.
	// A page of 1000 cases needs a few MiB.
	MaxResponseBytes int64
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
	// Sleep replaces the wait between retries (tests); nil waits for real.
	Sleep func(ctx context.Context, d time.Duration) error
	// Observer is told about every HTTP attempt (metrics); nil observes nothing.
	Observer peerhttp.Observer
}

// Client talks to one Primero deployment. It is safe for concurrent use.
type Client struct {
	base *url.URL
	auth AuthMode
	http *peerhttp.Client

	// loginSem serialises logins and credential changes: Primero allows
	// only 6 logins per user per minute, so concurrent calls that all see an
	// expired token must share one login, and a login never races a
	// credential rotation. A channel, not a mutex, so waiting honours ctx.
	loginSem chan struct{}

	mu       sync.Mutex // guards the fields below
	userName string
	password string
	bearer   string // AuthToken: current token, "" when none
	gen      uint64 // AuthToken: bumped whenever bearer changes
}

// New validates cfg and returns a client. It makes no request: with
// AuthToken the first call logs in.
func New(cfg Config) (*Client, error) {
	var problems []refbridge.Problem
	bad := func(field, rule, detail string) {
		problems = append(problems, refbridge.Problem{Field: field, Rule: rule, Detail: detail})
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	switch {
	case cfg.BaseURL == "":
		bad("base_url", "required", "the Primero base URL is required")
	case err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https"):
		bad("base_url", "invalid", "must be an absolute http or https URL")
	case base.RawQuery != "" || base.Fragment != "":
		bad("base_url", "invalid", "must not carry a query or fragment")
	case base.User != nil:
		bad("base_url", "invalid", "must not carry credentials; use user_name and password")
	}
	if cfg.UserName == "" {
		bad("user_name", "required", "the API user name is required")
	}
	if cfg.Password == "" {
		bad("password", "required", "the API password is required")
	}
	if cfg.Auth != AuthBasic && cfg.Auth != AuthToken {
		bad("auth", "unknown_code", "must be basic or token")
	}
	if cfg.Timeout < 0 {
		bad("timeout", "invalid", "must not be negative")
	}
	if r := cfg.Retry; r.MaxAttempts < 0 || r.BaseDelay < 0 || r.MaxDelay < 0 || r.MaxRetryAfter < 0 {
		bad("retry", "invalid", "attempts and delays must not be negative")
	}
	if cfg.MaxResponseBytes < 0 {
		bad("max_response_bytes", "invalid", "must not be negative")
	}
	if len(problems) > 0 {
		return nil, &refbridge.Error{Code: refbridge.EInvalid, Message: "invalid Primero client configuration", Problems: problems}
	}
	return &Client{
		base: base,
		auth: cfg.Auth,
		http: peerhttp.New(peerhttp.Config{
			Peer:             peerName,
			Timeout:          cfg.Timeout,
			TLS:              cfg.TLS,
			Retry:            cfg.Retry,
			MaxResponseBytes: cfg.MaxResponseBytes,
			DecodeError:      DecodeError,
			Sleep:            cfg.Sleep,
			Transport:        cfg.Transport,
			Observer:         cfg.Observer,
		}),
		loginSem: make(chan struct{}, 1),
		userName: cfg.UserName,
		password: cfg.Password,
	}, nil
}

// SetCredentials replaces the API user's credentials, for secret rotation.
// Calls already in flight finish with the credentials they started with. In
// token mode the current token is dropped so the next call logs in with the
// new credentials (and proves them at once); SetCredentials waits for a
// login in progress to finish so a token never outlives its credentials.
func (c *Client) SetCredentials(userName, password string) error {
	if userName == "" || password == "" {
		return errorf(refbridge.EInvalid, "set credentials: user name and password are required")
	}
	c.loginSem <- struct{}{}
	defer func() { <-c.loginSem }()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.userName, c.password = userName, password
	if c.bearer != "" {
		c.bearer = ""
		c.gen++
	}
	return nil
}

// do sends req with the client's authentication. In token mode it logs in
// first when it holds no token, and on a 401 it logs in again once and
// repeats the call once: a 401 means Primero refused the request before
// processing it, so repeating even a non-idempotent call is safe.
func (c *Client) do(ctx context.Context, req peerhttp.Request) (*peerhttp.Response, error) {
	if c.auth == AuthBasic {
		req.Authorize = c.basicAuth
		return c.http.Do(ctx, req)
	}
	if err := c.ensureToken(ctx); err != nil {
		return nil, err
	}
	var used uint64 // generation of the token the last attempt carried
	req.Authorize = func(r *http.Request) error {
		c.mu.Lock()
		bearer, gen := c.bearer, c.gen
		c.mu.Unlock()
		used = gen
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		return nil
	}
	resp, err := c.http.Do(ctx, req)
	if refbridge.ErrorCodeOf(err) != refbridge.EUnauthorized {
		return resp, err
	}
	if err := c.relogin(ctx, used); err != nil {
		return nil, err
	}
	return c.http.Do(ctx, req)
}

func (c *Client) basicAuth(r *http.Request) error {
	c.mu.Lock()
	user, pass := c.userName, c.password
	c.mu.Unlock()
	r.SetBasicAuth(user, pass)
	return nil
}

// ensureToken logs in unless a token is held.
func (c *Client) ensureToken(ctx context.Context) error {
	c.mu.Lock()
	have, gen := c.bearer != "", c.gen
	c.mu.Unlock()
	if have {
		return nil
	}
	return c.relogin(ctx, gen)
}

// relogin replaces the token of generation stale with a fresh one. When
// another call already replaced it while this one waited, that token is used
// and no second login is made.
func (c *Client) relogin(ctx context.Context, stale uint64) error {
	select {
	case c.loginSem <- struct{}{}:
	case <-ctx.Done():
		return &refbridge.Error{Code: refbridge.ETransient, Peer: peerName, Message: "log in: waiting for another login", Err: ctx.Err()}
	}
	defer func() { <-c.loginSem }()

	c.mu.Lock()
	if c.bearer != "" && c.gen != stale {
		c.mu.Unlock()
		return nil
	}
	user, pass := c.userName, c.password
	c.mu.Unlock()

	bearer, err := c.login(ctx, user, pass)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.bearer = bearer
	c.gen++
	c.mu.Unlock()
	return nil
}

// login posts the credentials to /api/v2/tokens and returns the JWT.
//
// A refused login (401/403) is returned as unauthorized, the signal that the
// credentials must be fixed; a login that could not be made (peer down, rate
// limited, ctx ended) keeps its transient or rate_limited code, because
// retrying later may succeed without anyone's intervention.
func (c *Client) login(ctx context.Context, user, pass string) (string, error) {
	const op = "log in"
	body, err := json.Marshal(map[string]map[string]string{"user": {"user_name": user, "password": pass}})
	if err != nil {
		return "", &refbridge.Error{Code: refbridge.EInternal, Peer: peerName, Message: op, Err: err}
	}
	// RetryUnsent: every login attempt counts against Primero's lockout
	// (6 failures) and rate limit (6 per minute), so only attempts the peer
	// provably did not process are repeated.
	resp, err := c.http.Do(ctx, peerhttp.Request{Op: op, Method: http.MethodPost, URL: c.url("/api/v2/tokens", nil), Body: body, Retry: peerhttp.RetryUnsent})
	if err != nil {
		var e *refbridge.Error
		if errors.As(err, &e) && e.Code == refbridge.EForbidden {
			return "", &refbridge.Error{Code: refbridge.EUnauthorized, Peer: peerName, Status: e.Status, Message: op + ": credentials refused", Err: err}
		}
		return "", err
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return "", &refbridge.Error{Code: refbridge.EInternal, Peer: peerName, Status: resp.Status, Message: op + ": unreadable response", Err: err}
	}
	if out.Token != "" {
		return out.Token, nil
	}
	if tok, ok := strings.CutPrefix(resp.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		return tok, nil
	}
	// Primero ≥ v2.11 answers a successful login with a session cookie
	// only; a bridge must then use HTTP Basic.
	return "", &refbridge.Error{Code: refbridge.EUnauthorized, Peer: peerName, Status: resp.Status,
		Message: op + ": Primero issued no token (v2.11 and later); configure auth: basic"}
}

// url joins the base URL, an API path and query parameters.
func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// getRequest is a read: safe to retry on every transient failure.
func getRequest(op, url string) peerhttp.Request {
	return peerhttp.Request{Op: op, Method: http.MethodGet, URL: url, Retry: peerhttp.RetryIdempotent}
}

// get fetches path and decodes the JSON body into out.
func (c *Client) get(ctx context.Context, op, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, getRequest(op, c.url(path, q)))
	if err != nil {
		return err
	}
	return decodeBody(op, resp, out)
}

// send marshals {"data": data}, sends it and decodes a non-empty response
// body into out (when out is not nil).
func (c *Client) send(ctx context.Context, op, method, path string, data any, mode peerhttp.RetryMode, out any) (*peerhttp.Response, error) {
	body, err := json.Marshal(struct {
		Data any `json:"data"`
	}{data})
	if err != nil {
		return nil, &refbridge.Error{Code: refbridge.EInternal, Peer: peerName, Message: op + ": encode request", Err: err}
	}
	resp, err := c.do(ctx, peerhttp.Request{Op: op, Method: method, URL: c.url(path, nil), Body: body, Retry: mode})
	if err != nil {
		return nil, err
	}
	if out != nil && len(resp.Body) > 0 {
		if err := decodeBody(op, resp, out); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// decodeBody decodes a 2xx body. A body we cannot read is the peer breaking
// the contract, not a transient condition, hence EInternal; the JSON error
// names offsets and types, never values.
func decodeBody(op string, resp *peerhttp.Response, out any) error {
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return &refbridge.Error{Code: refbridge.EInternal, Peer: peerName, Status: resp.Status, Message: op + ": unreadable response", Err: jsonErrorWithoutValue(err)}
	}
	return nil
}

// jsonErrorWithoutValue drops the text of a JSON syntax or type error, which
// may quote a value from the record, keeping its position and Go type only.
func jsonErrorWithoutValue(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		// te.Value may hold the number itself ("number 12"): left out.
		return fmt.Errorf("JSON field %q: cannot decode into %s", te.Field, te.Type)
	}
	return errors.New("invalid JSON")
}
