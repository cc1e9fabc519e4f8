-- PostgreSQL twin of migrations/sqlite/0001_exchange.sql: same tables,
-- columns, constraints and indexes, so one set of queries serves both.
-- One row per referral or decision per flow, found again by its idempotency
-- key. Only payload holds personal data (AES-256-GCM, key id in key_id);
-- every other column is an id, a code or a count. Times are Unix
-- microseconds, UTC (BIGINT, as SQLite's INTEGER: no time zone conversions).
CREATE TABLE exchange (
    id           TEXT    NOT NULL PRIMARY KEY,
    flow         TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    problems     TEXT    NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    peer_ref     TEXT    NOT NULL DEFAULT '',
    payload      BYTEA,
    key_id       TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    purged_at    BIGINT,
    -- Intake of one key by two replicas at once yields one exchange: the
    -- store serialises intake on the audit anchor, and this constraint would
    -- refuse a second row even without it.
    UNIQUE (flow, idem_key)
);

-- List/Counts read newest first, optionally by state; Purge finds terminal
-- rows that still hold a payload; RotateKeys finds rows under an old key.
CREATE INDEX exchange_created_idx ON exchange (created_at, id);
CREATE INDEX exchange_state_idx ON exchange (state, created_at);
CREATE INDEX exchange_purge_idx ON exchange (state, updated_at) WHERE payload IS NOT NULL;
CREATE INDEX exchange_key_id_idx ON exchange (key_id) WHERE key_id IS NOT NULL;

-- Poll cursors: where each poller resumes (an opaque value it chose).
CREATE TABLE poll_cursor (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
