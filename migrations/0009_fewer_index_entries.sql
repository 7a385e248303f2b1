-- Fewer index entries per event, and lease changes that Postgres can make in place (HOT).

-- The primary key of `attempts` in the order the table is read: newest first, by (sent_at, id).
-- `attempts_keyset` was the same two columns the other way round, a second entry for every row.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
ALTER TABLE attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY (sent_at, id);
DROP INDEX attempts_keyset;

-- The one-in-flight check reads the few deliveries of a conversion through
-- `deliveries_conversion`; an index of leased rows cost an entry for every delivery, and made
-- every lease change a new row version with new index entries.
DROP INDEX deliveries_leased;

-- Failed deliveries are read all at once (`redeliver --failed`, its time bound a filter): keyed by
-- id, so `updated_at` is in no index and a claim's or a release's update is HOT.
CREATE INDEX deliveries_failed_by_id ON deliveries (id) WHERE state = 'failed';
DROP INDEX deliveries_failed;
ALTER INDEX deliveries_failed_by_id RENAME TO deliveries_failed;
