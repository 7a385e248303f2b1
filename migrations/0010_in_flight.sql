-- cross-postback schema: the one-in-flight index holds only the deliveries that are in flight
-- and not pending. A pending delivery's lease is read from its row, found through
-- `deliveries_one_pending` (at most one per conversion and URL); what the check must find
-- besides is an older delivery superseded (or cancelled) while its attempt runs. So a delivery
-- sent at its first attempt, leased while pending and released as it ends, no longer adds an
-- entry here: one index entry fewer for most events.
--
-- The old index is dropped first, so its ACCESS EXCLUSIVE lock is taken before the build and is
-- not an upgrade from the build's SHARE lock, which could deadlock with a running replica's
-- intake transaction (it holds ROW SHARE from its `FOR UPDATE` and waits to write). The build is
-- one scan of `deliveries`; the table waits for it.
DROP INDEX IF EXISTS deliveries_leased;
CREATE INDEX deliveries_in_flight ON deliveries (conversion_id, url_id)
    WHERE lease_until IS NOT NULL AND state <> 'pending';
