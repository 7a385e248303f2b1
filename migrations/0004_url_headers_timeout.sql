-- cross-postback schema v4: per-URL request headers and timeout. Never edit 0001 to 0003.
--
-- headers: a JSON array of [name, value] pairs, in the order given; values are templates
-- (macros allowed) and may hold secrets, so every output masks them.
-- timeout_ms: this URL's request timeout; NULL means the global delivery.timeout.
ALTER TABLE cross_postback_urls
    ADD COLUMN IF NOT EXISTS headers jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(headers) = 'array'),
    ADD COLUMN IF NOT EXISTS timeout_ms integer CHECK (timeout_ms > 0);
