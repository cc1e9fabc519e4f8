-- PostgreSQL twin of migrations/sqlite/0005_console_indexes.sql. The key
-- index uses the "C" collation: the prefix search compares keys byte by
-- byte (store.Filter.KeyPrefix), which a language collation does not.
CREATE INDEX exchange_created_flow_state_idx ON exchange (created_at, flow, state);
CREATE INDEX exchange_key_idx ON exchange (idem_key COLLATE "C");
