package store

import "strings"

// exchangeColumns is the column list every exchange read scans (scanRow).
const exchangeColumns = `id, flow, idem_key, content_hash, state, reason, problems, attempts,
 last_error, peer_ref, payload, key_id, created_at, updated_at, purged_at, resume`

// auditColumns is the column list every audit read scans (scanAudit) and
// the insert writes, in that order.
const auditColumns = `seq, at, kind, exchange_id, flow, idem_key, peer, actor, fields, outcome, reason, override, prev_hash, hash`

// userColumns is the column list every account read scans (scanAccount).
const userColumns = `name, role, password_hash, language, disabled, created_at, updated_at`

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

	purgeSelect  string
	purgeOne     string
	rotateSelect string
	rotateUpdate string
	keyIDsInUse  string

	cursorGet string
	cursorSet string

	auditAnchorGet  string
	auditAnchorSet  string
	auditTail       string
	auditInsert     string
	auditVerifyPage string
	auditHead       string
	auditExchange   string
	// auditSelect and auditCount are completed with AuditFilter.where.
	auditSelect string
	auditCount  string

	// listSelect, listCount and requeueFrom are completed with Filter.where
	// and bound when used, since their placeholders depend on the filter.
	listSelect  string
	listCount   string
	countsSince string
	requeueFrom string
	activity    string

	userExists           string
	userInsert           string
	userGet              string
	userList             string
	userSetPassword      string
	userSetDisabled      string
	userSetLanguage      string
	sessionInsert        string
	sessionGet           string
	sessionDelete        string
	sessionDeleteUser    string
	sessionDeleteExpired string
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
 peer_ref = COALESCE(NULLIF(?, ''), peer_ref), payload = ?, key_id = ?, updated_at = ?, purged_at = NULL, resume = ''
 WHERE id = ?`),

		getByID:  b(`SELECT ` + exchangeColumns + ` FROM exchange WHERE id = ?`),
		getByKey: b(`SELECT ` + exchangeColumns + ` FROM exchange WHERE flow = ? AND idem_key = ?`),
		lockByID: b(`SELECT ` + exchangeColumns + ` FROM exchange WHERE id = ?` + d.lockRow),
		// The WHERE repeats what the transaction read: on an engine with
		// concurrent writers a lost race shows as 0 rows, never as a double move.
		transition: b(`UPDATE exchange SET content_hash = ?, state = ?, reason = ?, problems = ?, attempts = ?, last_error = ?,
 peer_ref = ?, payload = ?, key_id = ?, updated_at = ?, purged_at = ?, resume = ?
 WHERE id = ? AND state = ? AND content_hash = ?`),

		purgeSelect: b(`SELECT id, flow, idem_key, state FROM exchange
 WHERE state IN (` + terminalStates() + `) AND payload IS NOT NULL AND updated_at <= ? ORDER BY id LIMIT ?` + d.lockRow),
		purgeOne: b(`UPDATE exchange SET payload = NULL, key_id = NULL, purged_at = ? WHERE id = ? AND payload IS NOT NULL`),
		rotateSelect: b(`SELECT id, flow, idem_key, key_id, payload FROM exchange
 WHERE key_id IS NOT NULL AND key_id <> ? ORDER BY id LIMIT ?` + d.lockRow),
		rotateUpdate: b(`UPDATE exchange SET payload = ?, key_id = ? WHERE id = ? AND key_id = ?`),
		keyIDsInUse:  `SELECT DISTINCT key_id FROM exchange WHERE key_id IS NOT NULL`,

		cursorGet: b(`SELECT value FROM poll_cursor WHERE name = ?`),
		cursorSet: b(`INSERT INTO poll_cursor (name, value, updated_at) VALUES (?, ?, ?)
 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),

		// Appenders serialise on the anchor row: SQLite's write transaction
		// already does; on PostgreSQL the transaction locked it at BEGIN
		// (dialect.lockAudit) and lockRow repeats it here, so the
		// read-seq-and-hash-then-insert is atomic and the chain cannot fork.
		auditAnchorGet: `SELECT seq, hash FROM audit_anchor WHERE id = 1` + d.lockRow,
		auditAnchorSet: b(`INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?, ?)
 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`),
		auditTail: `SELECT COALESCE(MAX(seq), 0) FROM audit_events`,
		auditInsert: b(`INSERT INTO audit_events (` + auditColumns + `)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		auditVerifyPage: b(`SELECT ` + auditColumns + ` FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`),
		// One statement, so the table's end and the anchor are read together.
		auditHead: `SELECT (SELECT COALESCE(MAX(seq), 0) FROM audit_events),
 (SELECT seq FROM audit_anchor WHERE id = 1), (SELECT hash FROM audit_anchor WHERE id = 1)`,
		auditExchange: b(`SELECT flow, idem_key FROM exchange WHERE id = ?`),
		auditSelect:   `SELECT ` + auditColumns + ` FROM audit_events`,
		auditCount:    `SELECT COUNT(*) FROM audit_events`,

		listSelect:  `SELECT ` + strings.ReplaceAll(exchangeColumns, "payload", "NULL") + ` FROM exchange`,
		listCount:   `SELECT COUNT(*) FROM exchange`,
		countsSince: b(`SELECT flow, state, COUNT(*) FROM exchange WHERE created_at >= ? GROUP BY flow, state`),
		requeueFrom: `SELECT id FROM exchange`,
		activity: b(`SELECT at / ? AS bucket, kind, COUNT(*) FROM audit_events
 WHERE at >= ? AND kind IN (?, ?, ?, ?) GROUP BY bucket, kind`),

		userExists:      b(`SELECT COUNT(*) FROM console_user WHERE name = ?`),
		userInsert:      b(`INSERT INTO console_user (name, role, password_hash, language, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
		userGet:         b(`SELECT ` + userColumns + ` FROM console_user WHERE name = ?`),
		userList:        `SELECT ` + userColumns + ` FROM console_user ORDER BY name`,
		userSetPassword: b(`UPDATE console_user SET password_hash = ?, updated_at = ? WHERE name = ?`),
		userSetDisabled: b(`UPDATE console_user SET disabled = ?, updated_at = ? WHERE name = ?`),
		userSetLanguage: b(`UPDATE console_user SET language = ?, updated_at = ? WHERE name = ?`),
		sessionInsert:   b(`INSERT INTO console_session (token_hash, user_name, created_at, expires_at) VALUES (?, ?, ?, ?)`),
		sessionGet: b(`SELECT s.created_at, s.expires_at, u.name, u.role, u.password_hash, u.language, u.disabled, u.created_at, u.updated_at
 FROM console_session s JOIN console_user u ON u.name = s.user_name WHERE s.token_hash = ?`),
		sessionDelete:        b(`DELETE FROM console_session WHERE token_hash = ?`),
		sessionDeleteUser:    b(`DELETE FROM console_session WHERE user_name = ?`),
		sessionDeleteExpired: b(`DELETE FROM console_session WHERE expires_at <= ?`),
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
