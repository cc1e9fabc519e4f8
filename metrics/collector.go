package metrics

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"refbridge"
)

// stateCollector reads the scrape-time metrics from the Sources.
type stateCollector struct {
	cfg Config
	src Sources

	exchanges, queue, circuit, lag, lastPoll, up *prometheus.Desc

	mu     sync.Mutex // held while reading the sources, so concurrent scrapes share one read
	cached snapshot
}

// snapshot is what the store said at one moment.
type snapshot struct {
	at        time.Time
	exchanges map[refbridge.Flow]map[refbridge.ExchangeState]int
	queue     map[string]int
	lastPoll  time.Time
	// ok says, per source, whether its last read succeeded.
	ok map[string]bool
}

func newStateCollector(cfg Config, src Sources) *stateCollector {
	return &stateCollector{
		cfg: cfg, src: src,
		exchanges: prometheus.NewDesc(NameExchanges, "Exchanges in the store per flow and state.", []string{"flow", "state"}, nil),
		queue:     prometheus.NewDesc(NameQueueJobs, "Work queue jobs waiting (available, scheduled, retryable, pending) or running.", []string{"state"}, nil),
		circuit:   prometheus.NewDesc(NameCircuitState, "1 for the state each peer's circuit breaker is in, 0 for the others.", []string{"peer", "state"}, nil),
		lag:       prometheus.NewDesc(NamePollLag, "Seconds since a poll of Primero last succeeded (on any replica); absent before the first.", nil, nil),
		lastPoll:  prometheus.NewDesc(NamePollLastSuccess, "Unix time a poll of Primero last succeeded; 0 before the first.", nil, nil),
		up:        prometheus.NewDesc(NameSourceUp, "1 when the last read of a metrics source succeeded (exchanges, queue, poll).", []string{"source"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.exchanges, c.queue, c.circuit, c.lag, c.lastPoll, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	if c.src.Exchanges != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolValue(s.ok["exchanges"]), "exchanges")
		if s.ok["exchanges"] {
			// Every combination, zeros included, so a state that empties
			// reads 0 instead of vanishing.
			for _, f := range refbridge.Flows() {
				for _, st := range States() {
					ch <- prometheus.MustNewConstMetric(c.exchanges, prometheus.GaugeValue, float64(s.exchanges[f][st]), string(f), string(st))
				}
			}
			other := 0
			for f, byState := range s.exchanges {
				for st, n := range byState {
					if flowLabel(f) == Other || stateLabel(st) == Other {
						other += n
					}
				}
			}
			if other > 0 {
				ch <- prometheus.MustNewConstMetric(c.exchanges, prometheus.GaugeValue, float64(other), Other, Other)
			}
		}
	}
	if c.src.Queue != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolValue(s.ok["queue"]), "queue")
		if s.ok["queue"] {
			byLabel := map[string]int{}
			for st, n := range s.queue {
				byLabel[queueStateLabel(st)] += n
			}
			for st, n := range byLabel {
				ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(n), st)
			}
		}
	}
	if c.src.Poll != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolValue(s.ok["poll"]), "poll")
		if s.ok["poll"] {
			var at float64
			if !s.lastPoll.IsZero() {
				at = float64(s.lastPoll.UnixMilli()) / 1000
				// The lag is computed now, not when cached: it keeps growing
				// between reads of the store, as it does in reality.
				ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, max(c.cfg.Now().Sub(s.lastPoll), 0).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(c.lastPoll, prometheus.GaugeValue, at)
		}
	}
	if c.src.Circuits != nil {
		states := c.src.Circuits.CircuitStates()
		for _, p := range Peers() {
			for _, st := range CircuitStates() {
				ch <- prometheus.MustNewConstMetric(c.circuit, prometheus.GaugeValue, boolValue(states[p] == st), p, st)
			}
		}
		for p, st := range states {
			if !slices.Contains(Peers(), p) || !slices.Contains(CircuitStates(), st) {
				ch <- prometheus.MustNewConstMetric(c.circuit, prometheus.GaugeValue, 1, peerLabel(p), Other)
			}
		}
	}
}

// snapshot returns the cached read of the sources, reading them again when
// it is older than the TTL. A failed read is logged with its code and
// reported by NameSourceUp; the other sources are still read.
func (c *stateCollector) snapshot() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if !c.cached.at.IsZero() && now.Sub(c.cached.at) < c.cfg.CacheTTL {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.SourceTimeout)
	defer cancel()
	s := snapshot{at: now, ok: map[string]bool{}}
	fail := func(source string, err error) {
		c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "metrics source failed",
			slog.String("source", source), slog.String("code", string(refbridge.ErrorCodeOf(err))))
	}
	var err error
	if c.src.Exchanges != nil {
		if s.exchanges, err = c.src.Exchanges.Counts(ctx, time.Time{}); err != nil {
			fail("exchanges", err)
		}
		s.ok["exchanges"] = err == nil
	}
	if c.src.Queue != nil {
		if s.queue, err = c.src.Queue.QueueDepth(ctx); err != nil {
			fail("queue", err)
		}
		s.ok["queue"] = err == nil
	}
	if c.src.Poll != nil {
		if s.lastPoll, err = c.src.Poll.LastPoll(ctx); err != nil {
			fail("poll", err)
		}
		s.ok["poll"] = err == nil
	}
	c.cached = s
	return s
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
