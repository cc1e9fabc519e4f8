-- Indexes for the console's pages at pilot scale (issue #8; measured with
-- 100,000 exchanges in console/bench_test.go):
--  - the overview counts exchanges per flow and state since a time: a
--    covering index answers it from the index alone;
--  - a search by intervention number or case id is a key prefix: a range
--    on idem_key (the UNIQUE index leads with flow, so it cannot serve it).
CREATE INDEX exchange_created_flow_state_idx ON exchange (created_at, flow, state);
CREATE INDEX exchange_key_idx ON exchange (idem_key);
