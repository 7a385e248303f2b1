-- cross-postback schema v5: admin tokens and partner links of the statistics page and the HTTP
-- API, and the indexes its filters need. Never edit 0001 to 0004.

-- An admin token: only its SHA-256 is kept; the raw token is shown once, by `tokens create`.
CREATE TABLE admin_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- A partner link: an opaque token (kept as its SHA-256) and the scope it shows.
CREATE TABLE share_links (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    label         text,
    affiliate_ids text[] NOT NULL DEFAULT '{}',
    offer_ids     text[] NOT NULL DEFAULT '{}',
    -- The window: absolute (window_from and/or window_to) or rolling (window_last_s seconds
    -- back from each request), never both.
    window_from   timestamptz,
    window_to     timestamptz,
    window_last_s bigint CHECK (window_last_s > 0),
    columns       text[] NOT NULL,
    export        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    use_count     bigint NOT NULL DEFAULT 0,
    CHECK (cardinality(affiliate_ids) + cardinality(offer_ids) > 0),
    CHECK (window_last_s IS NULL OR (window_from IS NULL AND window_to IS NULL))
);

-- The table is read newest first, by keyset on (sent_at, id): each filter the page, the links
-- and the bench use has an index that yields rows in that order, so a page reads only its rows
-- (a backward scan of (x, sent_at, id) is `x = $1 ORDER BY sent_at DESC, id DESC`). These
-- replace the narrower (sent_at) and (offer_id, sent_at), which they cover. They stay valid
-- once attempts is partitioned by sent_at.
CREATE INDEX attempts_keyset ON attempts (sent_at, id);
CREATE INDEX attempts_offer_keyset ON attempts (offer_id, sent_at, id);
CREATE INDEX attempts_affiliate_keyset ON attempts (affiliate_id, sent_at, id);
DROP INDEX attempts_sent_at;
DROP INDEX attempts_offer;
