package store

import "strings"

// exchangeColumns is the column list every exchange read scans (scanRow).
const exchangeColumns = `id, flow, idem_key, content_hash, state, reason, problems, attempts,
 last_error, peer_ref, payload, key_id, created_at, updated_at, purged_at`

// queries is all of the store's SQL, written once with '?' placeholders and
// bound to a dialect's style at Open. Statements that differ between
// engines take the difference from the dialect, never from an if.
type queries struct {
	migrationApplied      string
	migrationRecord       string
	migrationLatest       string
	migrationsTableExists string

	intakeFind   string
	intakeInsert string
	intakeUpdate string

	getByID    string
	getByKey   string
	lockByID   string
	transition string

	purge        string
	rotateSelect string
	rotateUpdate string
	keyIDsInUse  string

	cursorGet string
	cursorSet string

	// listSelect, listCount and requeueFrom are completed with Filter.where
	// and bound when used, since their placeholders depend on the filter.
	listSelect  string
	listCount   string
	countsSince string
	requeueFrom string
}

func newQueries(d *dialect) queries {
	b := d.bind
	return queries{
		migrationApplied:      b(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`),
		migrationRecord:       b(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		migrationLatest:       `SELECT MAX(version) FROM schema_migrations`,
		migrationsTableExists: d.tableExists("schema_migrations"),

		intakeFind: b(`SELECT id, content_hash FROM exchange WHERE flow = ? AND idem_key = ?` + d.lockRow),
		intakeInsert: b(`INSERT INTO exchange (id, flow, idem_key, content_hash, state, problems, peer_ref, payload, key_id, created_at, updated_at)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		// An update re-opens the exchange whatever its state: new content is
		// new work. Attempts and last_error stay as history.
		intakeUpdate: b(`UPDATE exchange SET content_hash = ?, state = ?, reason = '', problems = ?,
 peer_ref = COALESCE(NULLIF(?, ''), peer_ref), payload = ?, key_id = ?, updated_at = ?, purged_at = NULL
 WHERE id = ?`),

		getByID:  b(`SELECT ` + exchangeColumns + ` FROM exchange WHERE id = ?`),
		getByKey: b(`SELECT ` + exchangeColumns + ` FROM exchange WHERE flow = ? AND idem_key = ?`),
		lockByID: b(`SELECT ` + exchangeColumns + ` FROM exchange WHERE id = ?` + d.lockRow),
		// The WHERE repeats what the transaction read: on an engine with
		// concurrent writers a lost race shows as 0 rows, never as a double move.
		transition: b(`UPDATE exchange SET state = ?, reason = ?, problems = ?, attempts = ?, last_error = ?,
 peer_ref = ?, payload = ?, key_id = ?, updated_at = ?, purged_at = ?
 WHERE id = ? AND state = ? AND content_hash = ?`),

		purge: b(`UPDATE exchange SET payload = NULL, key_id = NULL, purged_at = ?
 WHERE state IN (` + terminalStates() + `) AND payload IS NOT NULL AND updated_at <= ?`),
		rotateSelect: b(`SELECT id, flow, idem_key, key_id, payload FROM exchange
 WHERE key_id IS NOT NULL AND key_id <> ? ORDER BY id LIMIT ?` + d.lockRow),
		rotateUpdate: b(`UPDATE exchange SET payload = ?, key_id = ? WHERE id = ? AND key_id = ?`),
		keyIDsInUse:  `SELECT DISTINCT key_id FROM exchange WHERE key_id IS NOT NULL`,

		cursorGet: b(`SELECT value FROM poll_cursor WHERE name = ?`),
		cursorSet: b(`INSERT INTO poll_cursor (name, value, updated_at) VALUES (?, ?, ?)
 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),

		listSelect:  `SELECT ` + strings.ReplaceAll(exchangeColumns, "payload", "NULL") + ` FROM exchange`,
		listCount:   `SELECT COUNT(*) FROM exchange`,
		countsSince: b(`SELECT flow, state, COUNT(*) FROM exchange WHERE created_at >= ? GROUP BY flow, state`),
		requeueFrom: `SELECT id FROM exchange`,
	}
}

// terminalStates lists, as SQL literals, the states the domain calls
// terminal, so the purge query follows ExchangeState.Terminal.
func terminalStates() string {
	var lits []string
	for _, s := range allStates() {
		if s.Terminal() {
			lits = append(lits, "'"+string(s)+"'")
		}
	}
	return strings.Join(lits, ", ")
}
