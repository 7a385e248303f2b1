-- One index entry and one WAL record fewer for every attempt.

-- `attempts_once` made a batch the recorder writes again (after a lost answer to a commit that
-- was done) add nothing, through `ON CONFLICT`. The recorder now skips an attempt already there
-- by reading the primary key, which leads with `sent_at`; a unique index and the speculative
-- insertion `ON CONFLICT` needs are no longer written for every attempt. A delivery's attempts
-- are read through `attempts_conversion` (its conversion is known).
DROP INDEX attempts_once;
