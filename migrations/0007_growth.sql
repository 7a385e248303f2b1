-- cross-postback schema: growth. The claim reads each URL's oldest due deliveries, `attempts`
-- is partitioned by day of `sent_at`, and retention has the indexes it needs. Never edit 0001 to
-- 0006.

-- The poller claims, per URL, its oldest due pending deliveries and stops at its limit: its work
-- follows what it claims, not the backlog. It replaces `deliveries_due`, which only the old claim
-- and the old count of due deliveries read.
CREATE INDEX deliveries_pending_by_url ON deliveries (url_id, next_attempt_at) WHERE state = 'pending';
DROP INDEX IF EXISTS deliveries_due;

-- Retention removes conversions unchanged for `retention.conversions`, oldest first.
CREATE INDEX conversions_modified ON conversions (modified_at);

-- One partition per UTC day of `sent_at`, named attempts_YYYYMMDD; made when missing, under a
-- transaction-scoped advisory lock ("xpb_part"), so replicas starting at once do not race. The
-- daemon makes them a week ahead; retention detaches and drops whole ones.
CREATE FUNCTION xpb_attempts_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'attempts_' || to_char(day, 'YYYYMMDD');
BEGIN
    PERFORM pg_advisory_xact_lock(8678544643989795444);
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF attempts FOR VALUES FROM (%L) TO (%L)', name,
                   day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    RETURN true;
END
$$;

-- `attempts` becomes partitioned, every row kept. Generic on purpose: every column, CHECK, index
-- and view on the old table is carried over as it is when this runs (earlier migrations of other
-- branches may have added some), a unique index gains `sent_at` (a partitioned table's unique
-- keys must hold the partition key). The foreign key to `deliveries` is not carried over:
-- removing a delivery would probe every partition; the daemon writes an attempt only for a
-- delivery it holds, and retention drops attempts before their deliveries.
DO $$
DECLARE
    idx record;
    v record;
    views text[][] := '{}';
    indexes text[] := '{}';
    cols text;
    day date;
BEGIN
    -- What depends on the old table, captured while its definitions still name `attempts`.
    FOR v IN
        SELECT DISTINCT c.oid::regclass::text AS name, pg_get_viewdef(c.oid) AS def
        FROM pg_depend dep
        JOIN pg_rewrite rw ON rw.oid = dep.objid
        JOIN pg_class c ON c.oid = rw.ev_class
        WHERE dep.refobjid = 'attempts'::regclass AND c.relkind = 'v' AND c.oid <> 'attempts'::regclass
    LOOP
        views := views || ARRAY[[v.name, v.def]];
    END LOOP;
    FOR idx IN
        SELECT i.indexrelid, i.indisunique, i.indisprimary, ic.relname AS name,
               pg_get_indexdef(i.indexrelid) AS def,
               pg_get_expr(i.indpred, i.indrelid) AS pred,
               EXISTS (SELECT 1 FROM unnest(i.indkey) k JOIN pg_attribute a
                       ON a.attrelid = i.indrelid AND a.attnum = k WHERE a.attname = 'sent_at') AS has_key
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = 'attempts'::regclass
    LOOP
        IF idx.indisprimary THEN
            indexes := indexes || format('ALTER TABLE attempts ADD CONSTRAINT %I PRIMARY KEY (id, sent_at)', idx.name);
        ELSIF idx.indisunique AND NOT idx.has_key THEN
            SELECT string_agg(pg_get_indexdef(idx.indexrelid, k, true), ', ' ORDER BY k) INTO cols
            FROM generate_series(1, (SELECT indnkeyatts FROM pg_index WHERE indexrelid = idx.indexrelid)) k;
            indexes := indexes || format('CREATE UNIQUE INDEX %I ON attempts (%s, sent_at)%s', idx.name, cols,
                                         coalesce(' WHERE ' || idx.pred, ''));
        ELSE
            indexes := indexes || idx.def;
        END IF;
    END LOOP;

    ALTER TABLE attempts RENAME TO attempts_v1;
    CREATE TABLE attempts (LIKE attempts_v1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY
                           INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (sent_at);

    -- A partition for each day that has rows, and for yesterday to a week ahead.
    FOR day IN
        SELECT DISTINCT (sent_at AT TIME ZONE 'UTC')::date FROM attempts_v1
        UNION
        SELECT d::date FROM generate_series((now() AT TIME ZONE 'UTC')::date - 1,
                                            (now() AT TIME ZONE 'UTC')::date + 7, interval '1 day') d
    LOOP
        PERFORM xpb_attempts_partition(day);
    END LOOP;
    INSERT INTO attempts OVERRIDING SYSTEM VALUE SELECT * FROM attempts_v1;
    PERFORM setval(pg_get_serial_sequence('attempts', 'id'), greatest((SELECT max(id) FROM attempts_v1), 1));

    FOR i IN 1 .. coalesce(array_length(views, 1), 0) LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', views[i][1], views[i][2]);
    END LOOP;
    DROP TABLE attempts_v1;
    FOR i IN 1 .. coalesce(array_length(indexes, 1), 0) LOOP
        EXECUTE indexes[i];
    END LOOP;
END
$$;

-- An attempt is recorded once. The recorder writes a batch again when the answer to its commit
-- was lost (a cut connection) though the commit was done; the second write must then add
-- nothing, so attempts are unique by (delivery, attempt number, sent_at), and the index leads with
-- `delivery_id` like the one it replaces. Rows such a lost answer doubled before are the same
-- attempt twice (same delivery, number and time to the microsecond): one of each is kept.
DELETE FROM attempts a USING attempts b
WHERE a.delivery_id = b.delivery_id AND a.attempt = b.attempt AND a.sent_at = b.sent_at AND a.id > b.id;
DROP INDEX attempts_delivery;
CREATE UNIQUE INDEX attempts_once ON attempts (delivery_id, attempt, sent_at);

ANALYZE attempts;
