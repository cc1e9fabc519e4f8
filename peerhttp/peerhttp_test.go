package peerhttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"refbridge"
	"refbridge/fault"
	"refbridge/peerhttp"
)

// recordSleeps replaces the real wait so retry tests run instantly and can
// assert which waits were asked for.
type recordSleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recordSleeps) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return ctx.Err()
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// statusSequence answers with the given statuses in order, then 200.
func statusSequence(t *testing.T, header http.Header, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(statuses) {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(statuses[i])
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})
	return srv, &n
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   refbridge.ErrorCode
	}{
		{400, refbridge.EInvalid}, {422, refbridge.EInvalid}, {401, refbridge.EUnauthorized},
		{403, refbridge.EForbidden}, {404, refbridge.ENotFound}, {409, refbridge.EConflict},
		{429, refbridge.ERateLimited}, {408, refbridge.ETransient}, {500, refbridge.ETransient},
		{502, refbridge.ETransient}, {503, refbridge.ETransient}, {504, refbridge.ETransient},
		{418, refbridge.EInvalid},
	}
	for _, tt := range tests {
		if got := peerhttp.ClassifyStatus(tt.status); got != tt.want {
			t.Errorf("ClassifyStatus(%d) = %s, want %s", tt.status, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		if got := peerhttp.ParseRetryAfter(h, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestRetryModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mode      peerhttp.RetryMode
		statuses  []int
		wantCalls int32
		wantCode  refbridge.ErrorCode
	}{
		{"idempotent retries 500s", peerhttp.RetryIdempotent, []int{500, 502}, 3, ""},
		{"unsent retries 503 and 429", peerhttp.RetryUnsent, []int{503, 429}, 3, ""},
		{"unsent does not retry 500", peerhttp.RetryUnsent, []int{500}, 1, refbridge.ETransient},
		{"never retries", peerhttp.RetryNever, []int{503}, 1, refbridge.ETransient},
		{"no retry on 422", peerhttp.RetryIdempotent, []int{422}, 1, refbridge.EInvalid},
		{"gives up after max attempts", peerhttp.RetryIdempotent, []int{503, 503, 503, 503, 503, 503}, 5, refbridge.ETransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := statusSequence(t, nil, tt.statuses...)
			var sl recordSleeps
			c := peerhttp.New(peerhttp.Config{Peer: "test", Sleep: sl.sleep})
			_, err := c.Do(context.Background(), peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL, Retry: tt.mode})
			if got := refbridge.ErrorCodeOf(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	srv, calls := statusSequence(t, http.Header{"Retry-After": {"3"}}, 429)
	var sl recordSleeps
	c := peerhttp.New(peerhttp.Config{Peer: "test", Sleep: sl.sleep})
	if _, err := c.Do(context.Background(), peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL, Retry: peerhttp.RetryIdempotent}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || len(sl.waits) != 1 || sl.waits[0] < 3*time.Second {
		t.Fatalf("calls=%d waits=%v, want 2 calls and one wait ≥ 3s", calls.Load(), sl.waits)
	}
}

func TestRetryAfterBeyondCeilingIsReturned(t *testing.T) {
	t.Parallel()
	srv, calls := statusSequence(t, http.Header{"Retry-After": {"3600"}}, 429)
	var sl recordSleeps
	c := peerhttp.New(peerhttp.Config{Peer: "test", Sleep: sl.sleep})
	_, err := c.Do(context.Background(), peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL, Retry: peerhttp.RetryIdempotent})
	if refbridge.ErrorCodeOf(err) != refbridge.ERateLimited || refbridge.ErrorRetryAfter(err) != time.Hour {
		t.Fatalf("err = %v, want rate_limited with retry-after 1h", err)
	}
	if calls.Load() != 1 || len(sl.waits) != 0 {
		t.Fatalf("calls=%d waits=%v, want one call and no in-line wait", calls.Load(), sl.waits)
	}
}

func TestDecodeErrorAndPeer(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(422)
		w.Write([]byte(`{"field":"age"}`))
	})
	c := peerhttp.New(peerhttp.Config{Peer: "primero", DecodeError: func(status int, _ http.Header, body []byte) *refbridge.Error {
		return &refbridge.Error{Message: "schema", Problems: []refbridge.Problem{{Field: "age", Rule: "invalid"}}}
	}})
	_, err := c.Do(context.Background(), peerhttp.Request{Op: "create case", Method: "POST", URL: srv.URL, Body: []byte(`{}`)})
	var e *refbridge.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *refbridge.Error", err)
	}
	if e.Code != refbridge.EInvalid || e.Peer != "primero" || e.Status != 422 || len(e.Problems) != 1 || e.Message != "create case: schema" {
		t.Fatalf("got %+v", e)
	}
}

func TestResponseSizeBounded(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 2048))
	})
	c := peerhttp.New(peerhttp.Config{Peer: "test", MaxResponseBytes: 1024})
	_, err := c.Do(context.Background(), peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL})
	if refbridge.ErrorCodeOf(err) != refbridge.EInternal {
		t.Fatalf("err = %v, want internal", err)
	}
}

func TestHangingPeerTimesOut(t *testing.T) {
	t.Parallel()
	inj := fault.New(1, nil)
	inj.Set("*", fault.Rule{HangRate: 1, HangFor: 10 * time.Second})
	srv := httptest.NewServer(inj.Wrap("GET /", http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	var sl recordSleeps
	c := peerhttp.New(peerhttp.Config{Peer: "test", Timeout: 100 * time.Millisecond, Sleep: sl.sleep, Retry: refbridge.RetryPolicy{MaxAttempts: 2}})
	_, err := c.Do(context.Background(), peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL, Retry: peerhttp.RetryIdempotent})
	if refbridge.ErrorCodeOf(err) != refbridge.ETransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want transient deadline exceeded", err)
	}
	if inj.Injected("*") != 2 {
		t.Fatalf("hangs = %d, want 2 (one retry)", inj.Injected("*"))
	}
}

func TestCancellationStopsRetries(t *testing.T) {
	t.Parallel()
	srv, calls := statusSequence(t, nil, 503, 503, 503, 503)
	ctx, cancel := context.WithCancel(context.Background())
	c := peerhttp.New(peerhttp.Config{Peer: "test", Sleep: func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}})
	_, err := c.Do(ctx, peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL, Retry: peerhttp.RetryIdempotent})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled in chain", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("calls = %d, want 1", calls.Load())
	}
}

func TestUnsentRetriesDialErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens: every attempt fails to dial
	var sl recordSleeps
	c := peerhttp.New(peerhttp.Config{Peer: "test", Sleep: sl.sleep, Retry: refbridge.RetryPolicy{MaxAttempts: 3}})
	_, err := c.Do(context.Background(), peerhttp.Request{Op: "post", Method: "POST", URL: url, Body: []byte(`{}`), Retry: peerhttp.RetryUnsent})
	if refbridge.ErrorCodeOf(err) != refbridge.ETransient || len(sl.waits) != 2 {
		t.Fatalf("err=%v waits=%d, want transient after 2 waits", err, len(sl.waits))
	}
}

func TestAuthorizeCalledPerAttempt(t *testing.T) {
	t.Parallel()
	srv, _ := statusSequence(t, nil, 503)
	var n atomic.Int32
	c := peerhttp.New(peerhttp.Config{Peer: "test", Sleep: (&recordSleeps{}).sleep})
	_, err := c.Do(context.Background(), peerhttp.Request{Op: "get", Method: "GET", URL: srv.URL, Retry: peerhttp.RetryIdempotent,
		Authorize: func(r *http.Request) error { n.Add(1); r.SetBasicAuth("u", "p"); return nil }})
	if err != nil || n.Load() != 2 {
		t.Fatalf("err=%v authorize calls=%d, want nil and 2", err, n.Load())
	}
}
