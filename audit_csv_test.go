package refbridge

import (
	"slices"
	"testing"
	"time"
)

// TestAuditCSVRecordNeutralisesFormulas: a key or actor a spreadsheet would
// run as a formula is exported as text; ordinary values are exported as is.
func TestAuditCSVRecordNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	ev := AuditEvent{Seq: 7, At: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC), Kind: AuditShared, ExchangeID: "0190aaaa",
		Flow: FlowReferral, Key: "=HYPERLINK(\"http://x\")", Peer: "dtp", Actor: "@primero:user", Fields: []string{"sex", "id"},
		Outcome: "-1", Reason: "+x", PrevHash: "ab", Hash: "cd"}
	got := ev.CSVRecord()
	want := []string{"7", "2026-11-25T08:00:00Z", "shared", "0190aaaa", "F2", "'=HYPERLINK(\"http://x\")", "dtp", "'@primero:user",
		"sex id", "'-1", "'+x", "false", "ab", "cd"}
	if !slices.Equal(got, want) {
		t.Fatalf("CSVRecord:\n got %q\nwant %q", got, want)
	}
	if len(AuditCSVHeader()) != len(got) {
		t.Fatalf("header has %d columns, record %d", len(AuditCSVHeader()), len(got))
	}
}
