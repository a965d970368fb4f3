-- New delivery ids are UUIDv7 (a millisecond timestamp, then random bits)
-- instead of random v4: each one lands at the right-hand end of the primary
-- key and of `webhook_logs (delivery_id)`, where the pages are already in
-- memory, instead of on a random leaf of an index that outgrows the cache.
-- Event ids from the producer are v7 already. Existing ids stay valid: the
-- column is still a plain UUID. (Postgres 18 has uuidv7(); this is the same
-- layout for older servers.)
CREATE FUNCTION webhookd_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        -- version 7: the 4 already set by gen_random_uuid() plus bits 4 and 5
        -- of byte 6 (set_bit counts from each byte's least significant bit)
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
