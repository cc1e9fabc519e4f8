package fault_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"refbridge/fault"
)

func ok() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

// outcomes sends n requests and returns the status of each (0 = no response).
func outcomes(t *testing.T, seed int64, rule fault.Rule, n int) []int {
	t.Helper()
	in := fault.New(seed, nil)
	in.Set("GET /x", rule)
	srv := httptest.NewServer(in.Wrap("GET /x", ok()))
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 2 * time.Second}
	out := make([]int, n)
	for i := range out {
		resp, err := client.Get(srv.URL)
		if err != nil {
			continue
		}
		resp.Body.Close()
		out[i] = resp.StatusCode
	}
	return out
}

func TestSameSeedSameFaults(t *testing.T) {
	t.Parallel()
	rule := fault.Rule{ErrorRate: 0.3, Statuses: []int{500, 502, 503}, DropRate: 0.1}
	a, b := outcomes(t, 42, rule, 60), outcomes(t, 42, rule, 60)
	faults := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d: %d vs %d with the same seed", i, a[i], b[i])
		}
		if a[i] != 200 {
			faults++
		}
	}
	if faults < 10 || faults > 40 {
		t.Fatalf("faults = %d of 60, want about 40%%", faults)
	}
}

func TestRetryAfterAndRuleScope(t *testing.T) {
	t.Parallel()
	in := fault.New(1, nil)
	in.Set("GET /limited", fault.Rule{ErrorRate: 1, Statuses: []int{429}, RetryAfter: 2 * time.Second})
	mux := http.NewServeMux()
	mux.Handle("GET /limited", in.Wrap("GET /limited", ok()))
	mux.Handle("GET /free", in.Wrap("GET /free", ok()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/limited")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("got %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = http.Get(srv.URL + "/free")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("unruled endpoint got %d", resp.StatusCode)
	}
	if in.Injected("GET /limited") != 1 || in.Injected("*") != 1 {
		t.Fatalf("injected counts wrong: %d / %d", in.Injected("GET /limited"), in.Injected("*"))
	}
	in.Clear()
	resp, err = http.Get(srv.URL + "/limited")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after Clear got %d", resp.StatusCode)
	}
}

func TestHangEndsWhenClientLeaves(t *testing.T) {
	t.Parallel()
	in := fault.New(1, nil)
	in.Set("*", fault.Rule{HangRate: 1, HangFor: time.Minute})
	srv := httptest.NewServer(in.Wrap("GET /", ok()))
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 100 * time.Millisecond}
	start := time.Now()
	if _, err := client.Get(srv.URL); err == nil {
		t.Fatal("hanging endpoint answered")
	}
	// srv.Close in Cleanup waits for the handler: it must have returned with the client.
	if time.Since(start) > 30*time.Second {
		t.Fatal("hang did not end with the client")
	}
}

// counted returns a handler that answers "done" and counts its calls: the
// peer's effect.
func counted(calls *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, strings.Repeat("done ", 100))
	})
}

func TestAnswerLostAfterTheEffect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rule    fault.Rule
		timeout time.Duration
		// answered is whether the client gets the whole body.
		answered bool
	}{
		{name: "reset", rule: fault.Rule{ResetRate: 1}, timeout: 2 * time.Second},
		{name: "slow body within the timeout", rule: fault.Rule{SlowBodyRate: 1, SlowBodyFor: 400 * time.Millisecond},
			timeout: 5 * time.Second, answered: true},
		{name: "slow body past the timeout", rule: fault.Rule{SlowBodyRate: 1, SlowBodyFor: 4 * time.Second},
			timeout: 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			in := fault.New(7, nil)
			in.Set("*", tc.rule)
			srv := httptest.NewServer(in.Wrap("POST /x", counted(&calls)))
			t.Cleanup(srv.Close)
			client := &http.Client{Timeout: tc.timeout}
			start := time.Now()
			resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("x"))
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if got := err == nil && len(body) == 500; got != tc.answered {
				t.Fatalf("answered = %v (err %v, %d bytes), want %v", got, err, len(body), tc.answered)
			}
			if tc.answered && time.Since(start) < 100*time.Millisecond {
				t.Errorf("slow body came in %v, before a quarter of SlowBodyFor", time.Since(start))
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("the real handler ran %d times, want once (the effect happens, the answer is lost)", n)
			}
			if in.AfterEffect() != 1 || in.Injected("*") != 1 {
				t.Errorf("AfterEffect = %d, Injected = %d, want 1 and 1", in.AfterEffect(), in.Injected("*"))
			}
		})
	}
}

func TestResetIsATCPReset(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	in := fault.New(1, nil)
	in.Set("*", fault.Rule{ResetRate: 1})
	srv := httptest.NewServer(in.Wrap("GET /", counted(&calls)))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the request: %v, want a connection reset", err)
	}
}
