-- cross-postback schema v2: `redeliver` and `rejected replay`. Never edit 0001.

-- The attempts a delivery had when it was last redelivered (0 if never). Attempt numbers keep
-- counting up from `attempts`; the retry schedule counts from the attempt after `retry_base`,
-- so a redelivered delivery gets the whole schedule again.
ALTER TABLE deliveries ADD COLUMN retry_base integer NOT NULL DEFAULT 0;

-- `redeliver --failed [--since T]` looks for failed deliveries by `updated_at`.
CREATE INDEX deliveries_failed ON deliveries (updated_at) WHERE state = 'failed';

-- When `rejected replay` last published the message again (null: never).
ALTER TABLE rejected_messages ADD COLUMN replayed_at timestamptz;
