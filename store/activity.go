package store

import (
	"context"
	"time"

	"refbridge"
)

// HourActivity counts what happened in one hour (UTC): exchanges that
// reached their peer, and exchanges that failed or were dead-lettered.
type HourActivity struct {
	Hour      time.Time
	Delivered int
	Failed    int
}

// hourMicros is an hour in the audit trail's unit.
const hourMicros = int64(time.Hour / time.Microsecond)

// Activity returns, per hour from since's hour to now's, how many
// delivered/decided and failed/dead audit events were recorded — for the
// console's chart. It reads the audit trail by time (an indexed range), so
// its cost follows the window, not the store's size.
func (db *DB) Activity(ctx context.Context, since time.Time) ([]HourActivity, error) {
	from := since.UTC().Truncate(time.Hour)
	rows, err := db.sql.QueryContext(ctx, db.q.activity, hourMicros, from.UnixMicro(),
		string(refbridge.AuditDelivered), string(refbridge.AuditDecided), string(refbridge.AuditFailed), string(refbridge.AuditDead))
	if err != nil {
		return nil, errStore("activity", err)
	}
	defer rows.Close()
	n := int(db.now().UTC().Truncate(time.Hour).Sub(from)/time.Hour) + 1
	out := make([]HourActivity, max(n, 0))
	for i := range out {
		out[i].Hour = from.Add(time.Duration(i) * time.Hour)
	}
	for rows.Next() {
		var bucket int64
		var kind string
		var count int
		if err := rows.Scan(&bucket, &kind, &count); err != nil {
			return nil, errStore("activity", err)
		}
		i := int((bucket*hourMicros - from.UnixMicro()) / hourMicros)
		if i < 0 || i >= len(out) {
			continue // an event stamped in the future (clock step): not charted
		}
		switch refbridge.AuditKind(kind) {
		case refbridge.AuditDelivered, refbridge.AuditDecided:
			out[i].Delivered += count
		default:
			out[i].Failed += count
		}
	}
	return out, errStore("activity", rows.Err())
}
