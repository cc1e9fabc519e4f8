package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestDemoOnceLosesAndDoublesNothing runs `refbridge demo --once` and reads
// its summary, which the demo computes from the simulators' state.
func TestDemoOnceLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	var out, errs strings.Builder
	code := run(context.Background(), []string{"demo", "--once", "--addr", "127.0.0.1:0", "--referrals", "40", "--verbose"}, strings.NewReader(""), &out, &errs)
	if code != 0 {
		t.Fatalf("demo --once exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	var sum struct {
		Flows map[string]struct {
			Sent, Delivered, Held, Rejected, Dead int
		}
		Lost, Duplicated int
	}
	if err := json.Unmarshal([]byte(out.String()), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out.String())
	}
	if sum.Lost != 0 || sum.Duplicated != 0 {
		t.Fatalf("lost %d, duplicated %d", sum.Lost, sum.Duplicated)
	}
	want := map[string]struct{ sent, rejected, held int }{
		"F1": {40, 4, 0}, // every tenth intervention lacks a family name
		// Of 20 referrals: consent withdrawn before sending for the 8th and
		// 16th, given again later for the 16th (released); the 4th, 12th and
		// 20th made with a consent override, which Gambella does not accept.
		"F2": {20, 0, 4},
		// 16 reached UNHCR and are decided; the 2nd, 10th and 18th had their
		// consent withdrawn after sending, so their decisions are held.
		"F2d": {16, 0, 3},
	}
	for flow, w := range want {
		got := sum.Flows[flow]
		if got.Sent != w.sent || got.Rejected != w.rejected || got.Delivered != w.sent-w.rejected-w.held {
			t.Errorf("%s: %+v, want sent %d rejected %d held %d and the rest delivered", flow, got, w.sent, w.rejected, w.held)
		}
	}
	for _, flow := range []string{"F1d"} {
		if got := sum.Flows[flow]; got.Sent == 0 || got.Delivered != got.Sent {
			t.Errorf("%s: %+v, want every decision delivered", flow, got)
		}
	}
	// The demo's log (every step, --verbose) carries IDs and codes, never
	// the synthetic children's data.
	if !strings.Contains(errs.String(), "http request") {
		t.Fatal("no log output to check")
	}
	for _, personal := range []string{"Demochild", "Democase", "Synthetic", "2015-02-28", "2013-06-30"} {
		if strings.Contains(errs.String(), personal) {
			t.Errorf("log output contains %q", personal)
		}
	}
}
