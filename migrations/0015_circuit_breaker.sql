-- Circuit breaker per webhook (docs/ARCHITECTURE.md, "Circuit breaker").
--
-- After `delivery.breaker_failures` consecutive failed attempts a webhook's
-- breaker opens: its pending deliveries are parked (left out of the
-- scheduler's index, so a dead receiver's backlog costs no claims), and one
-- probe at a time, across every replica, tests the receiver. A probe's
-- success closes the breaker and unparks the backlog; its failure keeps it
-- open with a doubled cooldown.
--
-- webhooks.breaker_failures        consecutive failed attempts (0 after a success)
-- webhooks.breaker_opened_at       when it opened; NULL: closed
-- webhooks.breaker_next_probe_at   when the next probe may be claimed; advanced
--                                  at claim, so a probe lost with its worker is
--                                  claimed again later, not never
-- webhooks.breaker_cooldown_ms     the current cooldown (doubles per failed probe)
-- webhooks.breaker_probe_id        the delivery being tried as the probe (half open)
-- deliveries.parked                pending, but not attempted while the breaker is open
ALTER TABLE webhooks
    ADD COLUMN breaker_failures INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN breaker_opened_at TIMESTAMPTZ,
    ADD COLUMN breaker_next_probe_at TIMESTAMPTZ,
    ADD COLUMN breaker_cooldown_ms INTEGER,
    ADD COLUMN breaker_probe_id UUID;

ALTER TABLE deliveries ADD COLUMN parked BOOLEAN NOT NULL DEFAULT false;

-- The scheduler never scans parked rows. (Rebuilt in the migration's
-- transaction, so writes to `deliveries` wait for the build: seconds per
-- million pending rows; only pending rows are indexed.)
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending' AND NOT parked;
-- A webhook's parked deliveries: the probe is chosen, and the backlog
-- unparked, through it.
CREATE INDEX deliveries_parked ON deliveries (webhook_id, next_attempt_at)
    WHERE status = 'pending' AND parked;
-- A webhook's unparked pending deliveries, parked when its breaker opens.
CREATE INDEX deliveries_pending_webhook ON deliveries (webhook_id)
    WHERE status = 'pending' AND NOT parked;
-- Breakers due for a probe.
CREATE INDEX webhooks_breaker_probe ON webhooks (breaker_next_probe_at)
    WHERE breaker_next_probe_at IS NOT NULL;
