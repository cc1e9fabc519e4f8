package peerhttp_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"refbridge"
	"refbridge/peerhttp"
)

// observed records what a Client tells its Observer.
type observed struct {
	mu      sync.Mutex
	classes []string
	peers   []string
}

func (o *observed) ObservePeerRequest(peer, class string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.peers = append(o.peers, peer)
	o.classes = append(o.classes, class)
}

// TestObserverSeesEveryAttempt checks that each attempt, retries included,
// is reported with its peer and status class, and a request that got no
// answer as "error".
func TestObserverSeesEveryAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		statuses []int
		mode     peerhttp.RetryMode
		want     []string
	}{
		{"ok", nil, peerhttp.RetryNever, []string{"2xx"}},
		{"retried 503 then ok", []int{503, 503}, peerhttp.RetryIdempotent, []string{"5xx", "5xx", "2xx"}},
		{"refused", []int{422}, peerhttp.RetryIdempotent, []string{"4xx"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := statusSequence(t, nil, tc.statuses...)
			obs := &observed{}
			c := peerhttp.New(peerhttp.Config{Peer: "dtp", Observer: obs, Sleep: (&recordSleeps{}).sleep,
				Retry: refbridge.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}})
			c.Do(context.Background(), peerhttp.Request{Op: "test", Method: http.MethodGet, URL: srv.URL, Retry: tc.mode})
			if !slices.Equal(obs.classes, tc.want) {
				t.Errorf("classes %v, want %v", obs.classes, tc.want)
			}
			for _, p := range obs.peers {
				if p != "dtp" {
					t.Errorf("peer %q, want dtp", p)
				}
			}
		})
	}
	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens: the dial is refused
		obs := &observed{}
		c := peerhttp.New(peerhttp.Config{Peer: "primero", Observer: obs, Sleep: (&recordSleeps{}).sleep,
			Retry: refbridge.RetryPolicy{MaxAttempts: 1}})
		if _, err := c.Do(context.Background(), peerhttp.Request{Op: "test", Method: http.MethodGet, URL: "http://" + addr}); err == nil {
			t.Fatal("a refused dial succeeded")
		}
		if !slices.Equal(obs.classes, []string{peerhttp.ClassError}) {
			t.Errorf("classes %v, want [error]", obs.classes)
		}
	})
}

func TestStatusClass(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]string{0: "error", 200: "2xx", 204: "2xx", 302: "3xx", 404: "4xx", 429: "4xx", 500: "5xx", 599: "5xx", 600: "error"} {
		if got := peerhttp.StatusClass(status); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", status, got, want)
		}
	}
}
