-- AC schema: signing keys (private half encrypted under AC_MASTER_KEY) and
-- OAuth 2 service clients (secrets as bcrypt hashes).

CREATE TABLE signing_keys (
    kid                    TEXT PRIMARY KEY,
    algorithm              TEXT NOT NULL DEFAULT 'EdDSA' CHECK (algorithm = 'EdDSA'),
    public_key             BYTEA NOT NULL CHECK (length(public_key) = 32),
    -- AES-256-GCM over the 32-byte Ed25519 seed, AAD = kid.
    private_key_nonce      BYTEA NOT NULL CHECK (length(private_key_nonce) = 12),
    private_key_ciphertext BYTEA NOT NULL,
    is_active              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Retired keys stay published in the JWKS until tokens signed with them
    -- have expired; NULL while the key is current.
    retired_at             TIMESTAMPTZ
);

-- At most one active key.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (is_active) WHERE is_active;

CREATE TABLE service_clients (
    client_id    TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT[] NOT NULL,
    service_type TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
