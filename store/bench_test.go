package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"refbridge"
	"refbridge/store"
)

// interventionPayload is an intervention-sized (~3 KB) synthetic payload;
// built by concatenation so that the benchmark times the store, not fmt.
func interventionPayload(key string) []byte {
	return []byte(`{"progres_interventionnumber":"` + key + `","name_first":"Testchild","name_last":"Benchmark",` +
		`"date_of_birth":"2014-03-15","sex":"F","notes":"` + strings.Repeat("synthetic case note. ", 140) + `"}`)
}

// BenchmarkReceive measures durable intake (fsync at every commit) of DTP
// batches of 100 interventions: one Receive is one inbox request. Reported:
// interventions/s and the p50/p99 latency of a batch.
func BenchmarkReceive(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("batch=100/clients=%d", clients), func(b *testing.B) {
			const batch = 100
			db, err := store.Open(context.Background(), store.Config{Path: filepath.Join(b.TempDir(), "bench.db"), Keys: newKeys(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var (
				next      atomic.Int64
				mu        sync.Mutex
				latencies []time.Duration
			)
			work := func() error {
				n := next.Add(1)
				items := make([]refbridge.Inbound, batch)
				for i := range items {
					key := "IN-" + strconv.FormatInt(n, 10) + "-" + strconv.Itoa(i)
					items[i] = refbridge.Inbound{Flow: refbridge.FlowIntervention, Key: key, ContentHash: key, Payload: interventionPayload(key)}
				}
				start := time.Now()
				if _, err := db.Receive(context.Background(), items); err != nil {
					return err
				}
				d := time.Since(start)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
				return nil
			}
			b.SetBytes(int64(batch * len(interventionPayload("IN-00000000-000"))))
			b.ResetTimer()
			if clients == 1 {
				for b.Loop() {
					if err := work(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(clients) // × GOMAXPROCS concurrent inbox requests
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := work(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(len(latencies)*batch)/b.Elapsed().Seconds(), "interventions/s")
			slices.Sort(latencies)
			if len(latencies) > 0 {
				b.ReportMetric(float64(latencies[len(latencies)*50/100].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(latencies[min(len(latencies)-1, len(latencies)*99/100)].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
