package metrics_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"refbridge"
	"refbridge/metrics"
)

// TestGrafanaDashboardUsesTheMetrics keeps deploy/grafana-dashboard.json in
// step with the registry: every refbridge_ name a panel queries is a family
// the Registry exposes (histograms by their _bucket, _count and _sum
// series), every family is shown somewhere, and each label a query names
// exists on that family.
func TestGrafanaDashboardUsesTheMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}

	// Every family, with one event of each kind so that all are exposed.
	r := metrics.New(metrics.Config{})
	r.Retried(refbridge.FlowReferral, refbridge.ETransient)
	r.DeadLettered(refbridge.FlowReferral, refbridge.ETransient)
	r.ObservePeerRequest("dtp", "2xx", 0)
	src := &countingStore{poll: time.Now().Add(-time.Minute)}
	if err := r.Watch(metrics.Sources{Exchanges: src, Queue: src, Poll: src, Circuits: circuits{"dtp": "closed"}}); err != nil {
		t.Fatal(err)
	}
	families := map[string]map[string]bool{} // series name → label names
	for name, fam := range gather(t, r) {
		if !strings.HasPrefix(name, "refbridge_") {
			continue
		}
		labels := map[string]bool{}
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		if fam.GetType().String() == "HISTOGRAM" {
			families[name+"_count"], families[name+"_sum"] = labels, labels
			withLE := map[string]bool{"le": true}
			for l := range labels {
				withLE[l] = true
			}
			families[name+"_bucket"] = withLE
		}
		families[name] = labels
	}

	metricName := regexp.MustCompile(`refbridge_[a-z_]+`)
	selector := regexp.MustCompile(`(refbridge_[a-z_]+)\{([^}]*)\}`)
	byLabels := regexp.MustCompile(`by \(([^)]*)\)`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				if families[name] == nil {
					t.Errorf("panel %q queries %s, which the registry does not expose", p.Title, name)
				}
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
			}
			for _, m := range selector.FindAllStringSubmatch(tg.Expr, -1) {
				for _, matcher := range strings.Split(m[2], ",") {
					label, _, _ := strings.Cut(strings.TrimSpace(matcher), "=")
					label = strings.TrimRight(label, "!~")
					if label != "" && !families[m[1]][label] {
						t.Errorf("panel %q filters %s on %q, a label it does not have", p.Title, m[1], label)
					}
				}
			}
			names := metricName.FindAllString(tg.Expr, -1)
			for _, m := range byLabels.FindAllStringSubmatch(tg.Expr, -1) {
				for _, label := range strings.Split(m[1], ",") {
					label = strings.TrimSpace(label)
					found := false
					for _, n := range names {
						found = found || families[n][label]
					}
					if !found {
						t.Errorf("panel %q groups by %q, which %v do not have", p.Title, label, names)
					}
				}
			}
		}
	}
	for _, name := range []string{metrics.NameExchanges, metrics.NameDeliverySeconds, metrics.NameRetries, metrics.NameDeadLetters,
		metrics.NamePeerRequestSeconds, metrics.NameQueueJobs, metrics.NameCircuitState, metrics.NamePollLag,
		metrics.NamePollLastSuccess, metrics.NameSourceUp} {
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}
