package storetest

import (
	"context"
	"testing"
	"time"

	"refbridge"
	"refbridge/store"
)

// testActivityAndKeyPrefix: the console's chart counts deliveries and
// failures per hour; a key prefix finds a case's or an intervention's exchanges.
func testActivityAndKeyPrefix(t *testing.T, open Opener) {
	ctx := context.Background()
	s := newSetup(t, open)
	db := s.db
	t0 := s.clock.Now()
	ids := receive(t, db, inbound("IN-1", "h"), inbound("IN-2", "h"), inbound("OTHER-3", "h"))
	if _, err := db.Transition(ctx, ids[0].ExchangeID, store.Change{To: refbridge.StateDone}); err != nil {
		t.Fatal(err)
	}
	s.clock.Add(2 * time.Hour)
	if _, err := db.Transition(ctx, ids[1].ExchangeID, store.Change{To: refbridge.StateDead, Reason: "retry_budget_spent"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Transition(ctx, ids[2].ExchangeID, store.Change{To: refbridge.StateFailed}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Activity(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d hours, want 4: %+v", len(got), got)
	}
	want := []store.HourActivity{{Hour: t0.Add(-time.Hour)}, {Hour: t0, Delivered: 1}, {Hour: t0.Add(time.Hour)}, {Hour: t0.Add(2 * time.Hour), Failed: 2}}
	for i := range want {
		if !got[i].Hour.Equal(want[i].Hour) || got[i].Delivered != want[i].Delivered || got[i].Failed != want[i].Failed {
			t.Fatalf("hour %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	receive(t, db, inbound("case-7#000000000001", "h"), inbound("case-7#000000000002", "h"), inbound("case-70#000000000001", "h"),
		inbound("IN-é1", "h"), inbound("IN~", "h"))
	for prefix, want := range map[string]int{"IN-": 3, "case-7#": 2, "case-7": 3, "IN-é": 1, "IN~": 1, "OTHER-3": 1, "none": 0} {
		list, total, err := db.List(ctx, store.Filter{KeyPrefix: prefix})
		if err != nil || total != want || len(list) != want {
			t.Fatalf("KeyPrefix %q found %d (%d), %v; want %d", prefix, len(list), total, err, want)
		}
	}
}
