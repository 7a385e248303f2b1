-- One index entry fewer for every attempt.

-- The primary key of `attempts` in the order the table is read: newest first, by (sent_at, id).
-- `attempts_keyset` was the same two columns the other way round, a second entry for every row.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
ALTER TABLE attempts ADD CONSTRAINT attempts_pkey PRIMARY KEY (sent_at, id);
DROP INDEX attempts_keyset;
