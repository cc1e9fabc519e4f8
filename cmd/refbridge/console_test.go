package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestDemoConsoleOneTimeLink: the demo's bridge serves the console on its
// own address, and the printed one-time link logs the demo admin in once.
func TestDemoConsoleOneTimeLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := startDemo(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	link, err := d.consoleLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, cookie string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, d.bridgeURL+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := get(link, "")
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 {
		t.Fatalf("one-time link = %d with %d cookies", res.StatusCode, len(res.Cookies()))
	}
	ck := res.Cookies()[0]
	if res := get("/console/", ck.Name+"="+ck.Value); res.StatusCode != http.StatusOK {
		t.Fatalf("console after login = %d", res.StatusCode)
	}
	if res := get(link, ""); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("link used twice = %d, want 401", res.StatusCode)
	}
	// The inbound API is still there beside it.
	if res := get("/healthz", ""); res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), "json") {
		t.Fatalf("healthz = %d", res.StatusCode)
	}
}
