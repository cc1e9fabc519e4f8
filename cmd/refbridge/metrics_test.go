package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"refbridge"
	"refbridge/metrics"
	"refbridge/peerhttp"
	"refbridge/server"
)

// TestMetricsAfterDemoTraffic runs the demo's traffic through the whole
// bridge (both simulators, the real engine and store) and scrapes /metrics:
// every refbridge family is there with its label names, the counts add up
// with what was sent, and no label value is anything but a code.
func TestMetricsAfterDemoTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := startDemo(ctx, "127.0.0.1:0", newLogger(io.Discard, "text", "error"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	tr := &traffic{d: d, n: 20, out: io.Discard}
	if err := tr.run(ctx); err != nil {
		t.Fatal(err)
	}
	if sum := tr.summary(ctx); sum.Lost != 0 || sum.Duplicated != 0 {
		t.Fatalf("traffic lost %d, duplicated %d", sum.Lost, sum.Duplicated)
	}
	// The first poll runs once River has elected the queue's leader, which
	// can take longer than this small traffic: wait for it, as a scrape in
	// production would come after it.
	for deadline := time.Now().Add(30 * time.Second); ; {
		at, err := d.app.engine.LastPoll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !at.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no poll of Primero succeeded within 30 s of the demo's start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // past the collector's cache of the store's figures
	fams := scrape(t, d.bridgeURL+server.RouteMetrics)

	wantLabels := map[string][]string{
		metrics.NameExchanges:          {"flow", "state"},
		metrics.NameDeliverySeconds:    {"flow", "state"},
		metrics.NameRetries:            {"code", "flow"},
		metrics.NameDeadLetters:        {"code", "flow"},
		metrics.NamePeerRequestSeconds: {"peer", "status_class"},
		metrics.NameQueueJobs:          {"state"},
		metrics.NameCircuitState:       {"peer", "state"},
		metrics.NamePollLag:            nil,
		metrics.NamePollLastSuccess:    nil,
		metrics.NameSourceUp:           {"source"},
	}
	// Counters that only appear once something was retried or dead-lettered
	// may be absent after clean traffic; every other family must be there.
	mayBeAbsent := map[string]bool{metrics.NameRetries: true, metrics.NameDeadLetters: true}
	for name, labels := range wantLabels {
		fam, ok := fams[name]
		if !ok {
			if !mayBeAbsent[name] {
				t.Errorf("family %s missing", name)
			}
			continue
		}
		for _, m := range fam.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetName())
			}
			slices.Sort(got)
			if !slices.Equal(got, labels) {
				t.Errorf("%s has labels %v, want %v", name, got, labels)
			}
		}
	}

	// Label values: codes only, from the closed vocabularies.
	codes := map[string][]string{
		"flow":         flowsOf(refbridge.Flows()),
		"code":         codesOf(metrics.Codes()),
		"peer":         metrics.Peers(),
		"status_class": metrics.StatusClasses(),
		"source":       {"exchanges", "queue", "poll"},
	}
	stateCodes := append(statesOf(metrics.States()), metrics.JobStates()...)
	stateCodes = append(stateCodes, metrics.CircuitStates()...)
	codes["state"] = stateCodes
	for name, fam := range fams {
		if !strings.HasPrefix(name, "refbridge_") {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				allowed, known := codes[lp.GetName()]
				if !known || !slices.Contains(allowed, lp.GetValue()) {
					t.Errorf("%s{%s=%q}: not a known code", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}

	// The gauges agree with the store, and deliveries were timed.
	counts, err := d.app.db.Counts(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range refbridge.Flows() {
		for _, s := range metrics.States() {
			if got, want := gauge(fams[metrics.NameExchanges], map[string]string{"flow": string(f), "state": string(s)}), counts[f][s]; int(got) != want {
				t.Errorf("%s{%s,%s} = %v, store says %d", metrics.NameExchanges, f, s, got, want)
			}
		}
	}
	if n := histogramCount(fams[metrics.NameDeliverySeconds], map[string]string{"flow": string(refbridge.FlowIntervention), "state": string(refbridge.StateDelivered)}); n == 0 {
		t.Errorf("no F1 delivery was timed")
	}
	for _, peer := range metrics.Peers() {
		if n := histogramCount(fams[metrics.NamePeerRequestSeconds], map[string]string{"peer": peer, "status_class": peerhttp.Class2xx}); n == 0 {
			t.Errorf("no successful request to %s was timed", peer)
		}
	}
	if got := gauge(fams[metrics.NameCircuitState], map[string]string{"peer": "dtp", "state": "closed"}); got != 1 {
		t.Errorf("dtp circuit closed = %v, want 1", got)
	}
	if got := gauge(fams[metrics.NamePollLastSuccess], nil); got <= 0 {
		t.Errorf("%s = %v, want the time of a poll", metrics.NamePollLastSuccess, got)
	}
	for _, src := range codes["source"] {
		if got := gauge(fams[metrics.NameSourceUp], map[string]string{"source": src}); got != 1 {
			t.Errorf("%s{source=%s} = %v", metrics.NameSourceUp, src, got)
		}
	}

	// Readiness of the same running bridge.
	resp, err := http.Get(d.bridgeURL + server.RouteReady)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct{ Status, Store, Migrations string }
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || ready.Status != server.ReadyReady || ready.Store != "ok" || ready.Migrations != "current" {
		t.Errorf("/readyz = %d %+v, want 200 ready", resp.StatusCode, ready)
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// find returns the metric of fam whose labels include want.
func find(fam *dto.MetricFamily, want map[string]string) *dto.Metric {
	for _, m := range fam.GetMetric() {
		match := 0
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match == len(want) {
			return m
		}
	}
	return nil
}

func gauge(fam *dto.MetricFamily, want map[string]string) float64 {
	return find(fam, want).GetGauge().GetValue()
}

func histogramCount(fam *dto.MetricFamily, want map[string]string) uint64 {
	return find(fam, want).GetHistogram().GetSampleCount()
}

func flowsOf(fs []refbridge.Flow) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

func codesOf(cs []refbridge.ErrorCode) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func statesOf(ss []refbridge.ExchangeState) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
