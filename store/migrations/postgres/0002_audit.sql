-- PostgreSQL twin of migrations/sqlite/0002_audit.sql.
-- The audit trail (DESIGN.md invariant 5): one row per event, hash-chained
-- (hash = SHA-256 over the canonical encoding of every other column and
-- prev_hash, see refbridge.AuditEvent.CanonicalEncoding). Ids, codes and
-- field names only, never a personal value: rows outlive payload purge.
-- seq is assigned by the store (last + 1, inside the write transaction that
-- holds the anchor row's lock), never by a sequence, so a gap always means a
-- deleted row.
CREATE TABLE audit_events (
    seq         BIGINT  NOT NULL PRIMARY KEY,
    at          BIGINT  NOT NULL, -- Unix microseconds, UTC
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
);

-- Export and the console read by time or by exchange, in chain order.
CREATE INDEX audit_events_at_idx ON audit_events (at, seq);
CREATE INDEX audit_events_exchange_idx ON audit_events (exchange_id, seq) WHERE exchange_id <> '';

-- Append-only in the database too. This stops mistakes, not an attacker
-- (who can drop the triggers): VerifyAudit is what detects tampering.
-- TRUNCATE skips row triggers, so it has a statement trigger of its own.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The chain's head as of the last append, written in the same transaction
-- as the events: a chain rewritten consistently from some row on (hashes
-- recomputed) no longer ends at this hash. One row, always present; every
-- write transaction locks it first (FOR UPDATE), which is what orders the
-- writers of all replicas.
CREATE TABLE audit_anchor (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_anchor (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
