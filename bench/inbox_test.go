package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"refbridge/cmd/refbridge/refbridgetest"
	"refbridge/engine"
	"refbridge/profile"
	"refbridge/server"
	"refbridge/store"
)

const inboxToken = "bench-inbound-token"

// BenchmarkInboxIntake measures durable intake of DTP intervention batches
// through the real inbound API: HTTP over loopback, bearer token, strict
// decoding, per-item validation with the Gambella profile's mappings,
// canonical content hashing, then one store transaction per batch
// (encrypted payloads, a River job per item, synchronous=FULL: fsynced
// before the 200). One op is one batch of 100 new interventions; clients
// post concurrently. No worker runs: this is the inbox alone.
// The postgres sub-benchmarks run the same intake on PostgreSQL (issue #7)
// with 1, 2 or 3 replicas (stores and inbound APIs on one database, posted
// to in turn), skipped unless REFBRIDGE_TEST_POSTGRES names a server.
func BenchmarkInboxIntake(b *testing.B) {
	type setup struct {
		engine                   string
		replicas, batch, clients int
	}
	setups := []setup{{"sqlite", 1, 100, 1}, {"sqlite", 1, 100, 4}, {"sqlite", 1, 100, 16}}
	for _, replicas := range []int{1, 2, 3} {
		for _, clients := range []int{1, 4, 16} {
			setups = append(setups, setup{"postgres", replicas, 100, clients})
		}
	}
	for _, bc := range setups {
		name := fmt.Sprintf("%s/batch=%d/clients=%d", bc.engine, bc.batch, bc.clients)
		if bc.engine == "postgres" {
			name = fmt.Sprintf("%s/replicas=%d/batch=%d/clients=%d", bc.engine, bc.replicas, bc.batch, bc.clients)
		}
		b.Run(name, func(b *testing.B) {
			p, err := profile.Load("gambella")
			if err != nil {
				b.Fatal(err)
			}
			keys, _, err := store.GenerateKeyring()
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), "refbridge.db")
			if bc.engine == "postgres" {
				path = refbridgetest.PostgresDB(b)
			}
			var urls []string
			for range max(bc.replicas, 1) {
				db, err := store.Open(context.Background(), store.Config{Path: path, Keys: keys})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				srv, err := server.New(server.Config{Tokens: []string{inboxToken}, Inbox: db, Validator: engine.Validator{Profile: p}})
				if err != nil {
					b.Fatal(err)
				}
				hs := httptest.NewServer(srv.Handler())
				defer hs.Close()
				urls = append(urls, hs.URL)
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: bc.clients}}
			tmpl := newBatchTemplate(b, p, bc.batch)
			post := func(n int) (time.Duration, error) {
				body := tmpl.batch(n)
				req, err := http.NewRequest(http.MethodPost, urls[n%len(urls)]+server.RouteInterventions, bytes.NewReader(body))
				if err != nil {
					return 0, err
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+inboxToken)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return 0, err
				}
				data, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				d := time.Since(start)
				if err != nil {
					return 0, err
				}
				if resp.StatusCode != http.StatusOK {
					return 0, fmt.Errorf("status %d: %s", resp.StatusCode, data)
				}
				if n == 0 {
					var ans struct {
						Accepted int `json:"accepted"`
					}
					if err := json.Unmarshal(data, &ans); err != nil || ans.Accepted != bc.batch {
						return 0, fmt.Errorf("first batch: %d of %d accepted (%v): %s", ans.Accepted, bc.batch, err, data)
					}
				}
				return d, nil
			}
			if _, err := post(0); err != nil { // warm up, and check every item is accepted
				b.Fatal(err)
			}
			var (
				next atomic.Int64
				lat  latencies
				wg   sync.WaitGroup
				fail atomic.Value
			)
			b.SetBytes(int64(len(tmpl.body)))
			b.ResetTimer()
			for range bc.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := int(next.Add(1))
						if n > b.N {
							return
						}
						d, err := post(n)
						if err != nil {
							fail.Store(err)
							return
						}
						lat.add(d)
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if err, ok := fail.Load().(error); ok {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*bc.batch)/b.Elapsed().Seconds(), "interventions/s")
			lat.report(b)
		})
	}
}
