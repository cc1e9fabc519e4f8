// Package peerhttp is the one HTTP client setup refbridge uses to talk to its
// peers (Primero, DTP): per-attempt timeouts, bounded response sizes, in-line
// retries with the shared RetryPolicy where it is safe, Retry-After honoured,
// and every failure turned into a *refbridge.Error classified by status code
// and transport condition — never by matching message text.
package peerhttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"refbridge"
)

// RetryMode says which failures of a request may be retried in-line.
type RetryMode int

// Retry modes, from most to least cautious.
const (
	// RetryNever returns every failure to the caller.
	RetryNever RetryMode = iota
	// RetryUnsent retries only when the peer provably did not process the
	// request: the connection could not be made, or the peer answered 429/503.
	RetryUnsent
	// RetryIdempotent retries every transient failure; for reads, absolute
	// writes and creates guarded by a client-chosen id.
	RetryIdempotent
)

// Config sets up a Client.
type Config struct {
	// Peer names the remote system in every error ("primero", "dtp").
	Peer string
	// Timeout bounds one attempt, including reading the body. Default 30s.
	Timeout time.Duration
	// TLS is the client TLS configuration; nil uses system defaults.
	TLS *tls.Config
	// Retry is the in-line retry policy; the zero value means the default.
	Retry refbridge.RetryPolicy
	// MaxResponseBytes bounds a response body. Default 32 MiB.
	MaxResponseBytes int64
	// DecodeError turns a non-2xx response into an application error. It may
	// set Message (IDs and codes only) and Problems; Code, Status, RetryAfter
	// and Peer are filled from the response where it leaves them zero.
	DecodeError func(status int, header http.Header, body []byte) *refbridge.Error
	// Sleep waits between attempts; tests replace it. Default: a timer that
	// returns ctx.Err() when ctx ends first.
	Sleep func(ctx context.Context, d time.Duration) error
	// Transport overrides the default transport (tests).
	Transport http.RoundTripper
	// Observer is told how long each attempt took and how it ended; nil
	// observes nothing.
	Observer Observer
}

// Observer is told about every attempt a Client makes (for metrics). It is
// given codes and a duration only: the peer's name and the status class.
// It is called from the requesting goroutine, so it must be fast and safe
// for concurrent use.
type Observer interface {
	ObservePeerRequest(peer, statusClass string, d time.Duration)
}

// Status classes an Observer is given.
const (
	Class2xx   = "2xx"
	Class3xx   = "3xx"
	Class4xx   = "4xx"
	Class5xx   = "5xx"
	ClassError = "error" // no HTTP answer: dial, TLS, reset, timeout, cancelled
)

// StatusClass is the class of an attempt's outcome: its HTTP status class,
// or ClassError when no answer came.
func StatusClass(status int) string {
	switch {
	case status >= 200 && status < 300:
		return Class2xx
	case status >= 300 && status < 400:
		return Class3xx
	case status >= 400 && status < 500:
		return Class4xx
	case status >= 500 && status < 600:
		return Class5xx
	}
	return ClassError
}

// Request is one call to a peer.
type Request struct {
	// Op names the call in errors, e.g. "list cases".
	Op     string
	Method string
	URL    string
	Header http.Header
	// Body is sent as application/json when non-nil.
	Body  []byte
	Retry RetryMode
	// Authorize is called before every attempt so that a refreshed
	// credential is used on retries.
	Authorize func(*http.Request) error
}

// Response is a successful (2xx) answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Client sends requests to one peer.
type Client struct {
	cfg  Config
	http *http.Client
	now  func() time.Time
}

// New returns a client for cfg, filling defaults.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Retry.MaxAttempts <= 0 {
		cfg.Retry = refbridge.DefaultRetryPolicy()
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 32 << 20
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     cfg.TLS,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
	}
	// The per-attempt timeout is applied with a context, not http.Client.Timeout,
	// so the body read shares the same deadline and cancellation.
	return &Client{cfg: cfg, http: &http.Client{Transport: rt}, now: time.Now}
}

// Do sends req, retrying as its RetryMode and the policy allow. It returns the
// response for a 2xx status and a *refbridge.Error otherwise.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	policy := c.cfg.Retry
	for attempt := 1; ; attempt++ {
		start := time.Now()
		resp, err := c.once(ctx, req)
		c.observe(time.Since(start), resp, err)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil || attempt >= policy.MaxAttempts || !mayRetry(req.Retry, err) {
			return nil, err
		}
		wait := policy.Backoff(attempt)
		if ra := refbridge.ErrorRetryAfter(err); ra > 0 {
			if policy.MaxRetryAfter > 0 && ra > policy.MaxRetryAfter {
				return nil, err // longer than we wait in-line: let the caller reschedule
			}
			wait = max(wait, ra)
		}
		if serr := c.cfg.Sleep(ctx, wait); serr != nil {
			return nil, c.transportError(req, serr)
		}
	}
}

// observe tells the Observer how one attempt ended.
func (c *Client) observe(d time.Duration, resp *Response, err error) {
	if c.cfg.Observer == nil {
		return
	}
	status := 0
	var e *refbridge.Error
	switch {
	case resp != nil:
		status = resp.Status
	case errors.As(err, &e):
		status = e.Status // 0 for a transport failure
	}
	c.cfg.Observer.ObservePeerRequest(c.cfg.Peer, StatusClass(status), d)
}

func mayRetry(mode RetryMode, err error) bool {
	var e *refbridge.Error
	if !errors.As(err, &e) {
		return false
	}
	switch mode {
	case RetryIdempotent:
		return refbridge.IsRetryable(err)
	case RetryUnsent:
		return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable || isDialError(e.Err)
	}
	return false
}

func (c *Client) once(ctx context.Context, req Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return nil, &refbridge.Error{Code: refbridge.EInternal, Peer: c.cfg.Peer, Message: req.Op + ": build request", Err: err}
	}
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	if req.Body != nil && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if hr.Header.Get("Accept") == "" {
		hr.Header.Set("Accept", "application/json")
	}
	if req.Authorize != nil {
		if err := req.Authorize(hr); err != nil {
			return nil, err
		}
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, c.transportError(req, err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, &refbridge.Error{Code: refbridge.EInternal, Peer: c.cfg.Peer, Status: resp.StatusCode,
			Message: fmt.Sprintf("%s: response larger than %d bytes", req.Op, c.cfg.MaxResponseBytes)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
	}
	return nil, c.statusError(req, resp, data)
}

func (c *Client) statusError(req Request, resp *http.Response, body []byte) *refbridge.Error {
	var e *refbridge.Error
	if c.cfg.DecodeError != nil {
		e = c.cfg.DecodeError(resp.StatusCode, resp.Header, body)
	}
	if e == nil {
		e = &refbridge.Error{}
	}
	if e.Code == "" {
		e.Code = ClassifyStatus(resp.StatusCode)
	}
	if e.Status == 0 {
		e.Status = resp.StatusCode
	}
	if e.Peer == "" {
		e.Peer = c.cfg.Peer
	}
	if e.RetryAfter == 0 {
		e.RetryAfter = ParseRetryAfter(resp.Header, c.now())
	}
	if e.Message == "" {
		e.Message = req.Op
	} else {
		e.Message = req.Op + ": " + e.Message
	}
	return e
}

func (c *Client) transportError(req Request, err error) *refbridge.Error {
	e := &refbridge.Error{Code: refbridge.ETransient, Peer: c.cfg.Peer, Message: req.Op, Err: err}
	if isCertificateRefused(err) {
		e.Code = refbridge.EUnauthorized
		e.Message = req.Op + ": TLS client certificate refused by peer"
	}
	return e
}

// ClassifyStatus maps an HTTP status to an application error code.
func ClassifyStatus(status int) refbridge.ErrorCode {
	switch {
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		return refbridge.EInvalid
	case status == http.StatusUnauthorized:
		return refbridge.EUnauthorized
	case status == http.StatusForbidden:
		return refbridge.EForbidden
	case status == http.StatusNotFound, status == http.StatusGone:
		return refbridge.ENotFound
	case status == http.StatusConflict:
		return refbridge.EConflict
	case status == http.StatusTooManyRequests:
		return refbridge.ERateLimited
	case status == http.StatusRequestTimeout, status >= 500:
		return refbridge.ETransient
	case status >= 400:
		return refbridge.EInvalid
	}
	return refbridge.EInternal
}

// ParseRetryAfter reads a Retry-After header given in seconds or as an HTTP
// date; it returns 0 when there is none or it cannot be read.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isDialError reports whether err happened before any byte of the request
// could reach the peer.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// certificateAlert reports whether code is a TLS alert (RFC 8446 §6) a
// server sends when it refuses a client certificate: bad_certificate,
// unsupported, revoked, expired, unknown, unknown_ca, certificate_required —
// and handshake_failure, which a TLS 1.2 server sends for a missing client
// certificate (RFC 5246 §7.4.6); its other causes are configuration errors
// that a retry cannot cure either.
func certificateAlert(code uint64) bool {
	switch code {
	case 40, 42, 43, 44, 45, 46, 48, 116:
		return true
	}
	return false
}

// isCertificateRefused reports whether the peer rejected our TLS client
// certificate (missing, unknown CA, bad, expired) with a TLS alert.
func isCertificateRefused(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return certificateAlert(uint64(alert))
	}
	// crypto/tls reports an alert received over TCP as a *net.OpError with
	// Op "remote error" wrapping an unexported uint8 alert type; read its code.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		if v := reflect.ValueOf(op.Err); v.Kind() == reflect.Uint8 {
			return certificateAlert(v.Uint())
		}
	}
	return false
}

// CloseIdleConnections closes kept-alive connections so the next request
// makes a new TLS handshake, e.g. with a client certificate just reloaded.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
