-- OAuth access tokens (Docplanner client credentials), stored as hashes.
CREATE TABLE oauth_tokens (
    tenant_id INTEGER NOT NULL,
    token_hash TEXT NOT NULL,
    credential_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, token_hash)
);
-- Routing lookup from a presented token to its tenant, like credentials.
CREATE UNIQUE INDEX oauth_tokens_hash ON oauth_tokens (token_hash);
