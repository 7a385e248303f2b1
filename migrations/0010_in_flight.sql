-- cross-postback schema: the one-in-flight index holds only the deliveries that are in flight
-- and not pending. A pending delivery's lease is read from its row, found through
-- `deliveries_one_pending` (at most one per conversion and URL); what the check must find
-- besides is an older delivery superseded (or cancelled) while its attempt runs. So a delivery
-- sent at its first attempt, leased while pending and released as it ends, no longer adds an
-- entry here: one index entry fewer for most events.
CREATE INDEX deliveries_in_flight ON deliveries (conversion_id, url_id)
    WHERE lease_until IS NOT NULL AND state <> 'pending';
DROP INDEX deliveries_leased;
