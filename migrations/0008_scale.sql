-- Operating at scale: automatic disabling with its reason, alert state and outbox, and per-URL
-- rate limits with a token bucket shared by every replica.

ALTER TABLE cross_postback_urls
    ADD COLUMN disabled_reason text,
    ADD COLUMN disabled_at     timestamptz,
    -- Disabled by the daemon (not by an operator); `urls enable` clears the three.
    ADD COLUMN auto_disabled   boolean NOT NULL DEFAULT false;

-- The automatic checks read a URL's recent attempts.
CREATE INDEX attempts_url ON attempts (url_id, sent_at);

-- Whether a URL's 2xx share over the last hour is under alerts.failure_ratio, as last announced:
-- kept here so that replicas agree and a restart does not announce it again.
CREATE TABLE url_alert_state (
    url_id     bigint PRIMARY KEY REFERENCES cross_postback_urls (id),
    failing    boolean NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- Alerts to send, written in the transaction that changes the state they announce (so each
-- change is announced once), sent by the alert job and tried again a few times.
CREATE TABLE alert_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url_id      bigint NOT NULL REFERENCES cross_postback_urls (id),
    kind        text NOT NULL CHECK (kind IN ('disabled', 'failure_ratio', 'recovered')),
    payload     jsonb NOT NULL,
    tries       integer NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    sent_at     timestamptz,
    -- Given up after the last try.
    failed_at   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_try_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- A URL's rate limit: at most rate_count requests per rate_unit ('s' or 'm'), rate_burst at once.
ALTER TABLE cross_postback_urls
    ADD COLUMN rate_count integer CHECK (rate_count > 0),
    ADD COLUMN rate_unit  text CHECK (rate_unit IN ('s', 'm')),
    ADD COLUMN rate_burst integer CHECK (rate_burst > 0),
    ADD CONSTRAINT cross_postback_urls_rate CHECK ((rate_count IS NULL) = (rate_unit IS NULL)
                                                   AND (rate_count IS NULL) = (rate_burst IS NULL));

-- The rate shared by every replica: each send takes the next slot of the URL's theoretical
-- arrival time (GCRA); a delivery over the rate keeps the slot it was given and waits for it.
CREATE TABLE url_rate_buckets (
    url_id bigint PRIMARY KEY REFERENCES cross_postback_urls (id),
    tat    timestamptz NOT NULL
);
CREATE TABLE url_rate_slots (
    delivery_id bigint PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    slot        timestamptz NOT NULL
);
