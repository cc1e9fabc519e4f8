package store

import "context"

// QueueStates lists the River job states QueueDepth reports: work waiting to
// run (available, scheduled, retryable, pending) and work running. Finished
// jobs (completed, cancelled, discarded) are history, not depth.
func QueueStates() []string {
	return []string{"available", "scheduled", "retryable", "pending", "running"}
}

// QueueDepth returns how many jobs of the work queue are in each of
// QueueStates (every one present, zero when none), for metrics.
func (db *DB) QueueDepth(ctx context.Context) (map[string]int, error) {
	states := QueueStates()
	out := make(map[string]int, len(states))
	for _, s := range states {
		out[s] = 0
	}
	// River's state column is an enum on PostgreSQL and text on SQLite;
	// comparing it with literals works on both.
	rows, err := db.sql.QueryContext(ctx, `SELECT state, COUNT(*) FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable', 'pending', 'running') GROUP BY state`)
	if err != nil {
		return nil, errStore("queue depth", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, errStore("queue depth", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, errStore("queue depth", err)
	}
	return out, nil
}
