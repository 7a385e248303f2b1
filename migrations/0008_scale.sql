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
