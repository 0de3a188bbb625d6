"""The tables of e-mail alerts, created with the alerts database (``alerts.DDL``).

They live beside the outbox so that a subscription change, its confirmation mail's
delivery row and the cancellation of its pending mails commit in one transaction.
No address is stored in clear: ``addr_enc`` is AES-GCM ciphertext (deleted with the row on
unsubscribe) and ``addr_hash`` a keyed HMAC used to find duplicates; table names are
distinct from every other state schema's (PostgreSQL resolves them by ``search_path``).
"""

#: the outbox delivery kinds of e-mail: an immediate alert, a digest's sighting, the
#: double opt-in mail (the only one whose row points at no event)
EMAIL = "email"
DIGEST = "email_digest"
CONFIRM = "email_confirm"
EMAIL_KINDS = frozenset({EMAIL, DIGEST, CONFIRM})

EMAIL_DDL = """
INSERT INTO meta (key, value) VALUES ('email_version', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS email_subscriptions (
    id TEXT PRIMARY KEY,
    addr_hash TEXT NOT NULL,
    addr_enc TEXT NOT NULL,
    area TEXT NOT NULL,
    municipality TEXT,
    area_input TEXT NOT NULL,
    species TEXT NOT NULL,
    mode TEXT NOT NULL,
    lang TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    confirm_nonce TEXT,
    unsub_nonce TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS email_subscriptions_addr ON email_subscriptions (addr_hash);
CREATE TABLE IF NOT EXISTS email_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
