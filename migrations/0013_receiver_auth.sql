-- Authentication to receivers (SPEC §14 `auth`): null, or a JSON object
-- whose `type` is basic, bearer, oauth2 or mtls, with its fields. Reads for
-- the API and the UI strip the secret fields in SQL (`auth - '{...}'`);
-- only the delivery path reads them. Stored in clear until the encryption
-- at rest of SPEC §15 covers them.
ALTER TABLE webhooks ADD COLUMN auth JSONB;
