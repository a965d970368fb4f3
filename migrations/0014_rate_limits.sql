-- Per-webhook rate limits shared by every worker replica (SPEC §14).
--
-- `webhook_rate_budgets` holds one row per limited webhook: a virtual
-- schedule (GCRA). `next_free` is the earliest time the next request may be
-- sent; reserving n slots advances it by n / limit seconds from
-- greatest(next_free, now()), in one statement on the row's lock, so every
-- replica draws from the same budget and the database clock is the only one
-- that counts. `deferred_until` paces the deliveries that found no slot
-- within the horizon: they are handed back due at successive times from it,
-- so they return at the pace the limit allows instead of all at once.
--
-- The foreign key is kept (unlike the hot-path tables of 0005): the budget
-- row is inserted once per webhook and afterwards only updated in columns
-- the key does not cover, which checks nothing and locks nothing on
-- `webhooks`.
ALTER TABLE webhooks
    ADD COLUMN rate_limit_per_s INTEGER NULL
        CHECK (rate_limit_per_s BETWEEN 1 AND 10000);

CREATE TABLE webhook_rate_budgets (
    webhook_id BIGINT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    next_free TIMESTAMPTZ NOT NULL,
    deferred_until TIMESTAMPTZ
);
