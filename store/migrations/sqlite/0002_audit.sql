-- The audit trail (DESIGN.md invariant 5): one row per event, hash-chained
-- (hash = SHA-256 over the canonical encoding of every other column and
-- prev_hash, see refbridge.AuditEvent.CanonicalEncoding). Ids, codes and
-- field names only, never a personal value: rows outlive payload purge.
-- seq is assigned by the store (last + 1, inside the write transaction),
-- never by AUTOINCREMENT, so a gap always means a deleted row.
CREATE TABLE audit_events (
    seq         INTEGER NOT NULL PRIMARY KEY,
    at          INTEGER NOT NULL, -- Unix microseconds, UTC
    kind        TEXT    NOT NULL,
    exchange_id TEXT    NOT NULL DEFAULT '',
    flow        TEXT    NOT NULL DEFAULT '',
    idem_key    TEXT    NOT NULL DEFAULT '',
    peer        TEXT    NOT NULL DEFAULT '',
    actor       TEXT    NOT NULL DEFAULT '',
    fields      TEXT    NOT NULL DEFAULT '', -- JSON array of field names; '' for none
    outcome     TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    override    INTEGER NOT NULL DEFAULT 0,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
) STRICT;

-- Export and the console read by time or by exchange, in chain order.
CREATE INDEX audit_events_at_idx ON audit_events (at, seq);
CREATE INDEX audit_events_exchange_idx ON audit_events (exchange_id, seq) WHERE exchange_id <> '';

-- Append-only in the database too. This stops mistakes, not an attacker
-- (who can drop the triggers): VerifyAudit is what detects tampering.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- The chain's head as of the last append, written in the same transaction
-- as the events: a chain rewritten consistently from some row on (hashes
-- recomputed) no longer ends at this hash. One row, always present.
CREATE TABLE audit_anchor (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
) STRICT;
INSERT INTO audit_anchor (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
