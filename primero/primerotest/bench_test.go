package primerotest

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkListCases10k pages through 10,000 cases, 1,000 per page, as the
// bridge's poller does on a first sync.
func BenchmarkListCases10k(b *testing.B) {
	s := newSim(b, Options{})
	s.SeedCases(10000, func(i int) map[string]any {
		return map[string]any{
			"name_first": "Testchild", "name_last": fmt.Sprintf("Fixture%05d", i), "sex": "female", "age": i % 18,
			"unhcr_individual_no": fmt.Sprintf("TST-%08d", i), "owned_by": uCW1,
			"consent_for_services": true, "disclosure_other_orgs": true,
			"services_section": []any{map[string]any{"service_type": "shelter", "service_implementing_agency": "UNHCR"}},
		}
	})
	client := &http.Client{}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		for page := 1; page <= 10; page++ {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v2/cases?per=1000&page=%d&order_by=last_updated_at&order=asc", s.URL, page), nil)
			req.SetBasicAuth(uBridge, password(uBridge))
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
			n += len(body)
		}
		b.SetBytes(int64(n))
	}
}
