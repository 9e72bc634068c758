# rescind-actor: ExecuteActionFunction.
# Acts on one planned reference at a time: disables entities, revokes tokens, secret-ids, certificates and
# leases, rotates KV secrets and destroys their old versions; reads each one back. Its guard reads the target's
# holds and owner first. The state machines never hand it a TTL to lower (the TTL sweep lowers them itself), so
# it may not. Database static roles and roots are rotated by Vault on its request.

# Tokens: look up, revoke (with its child tree, each child seen first).
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
path "auth/token/roles" {
  capabilities = ["list"]
}
path "sys/capabilities-accessor" {
  capabilities = ["update"]
}

# Identity entities: read (holds, owner), disable.
path "identity/entity/id/*" {
  capabilities = ["read", "update"]
}

# AppRole secret-ids: look up, destroy.
path "auth/{approle}/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}
path "auth/{approle}/role/+/secret-id-accessor/destroy" {
  capabilities = ["update"]
}

# PKI certificates: revoke, then rebuild the CRL when it does not list the serial yet (the verification reads it;
# the CRL and each certificate are unauthenticated reads).
path "{pki}/revoke" {
  capabilities = ["update"]
}
path "{pki}/crl/rotate" {
  capabilities = ["read"]
}

# KV v2 secrets: rotate (read, write the new version of an existing secret: never a new path), mark it pending
# in its custom_metadata, destroy the old versions.
path "{kv}/data/*" {
  capabilities = ["read", "update"]
}
path "{kv}/metadata/*" {
  capabilities = ["read", "patch"]
}
path "{kv}/destroy/*" {
  capabilities = ["update"]
}

# The rotation contract's staging copy (<kv>/_rescind-pending/<path>): created at createSecret, read back at
# finish, deleted once the rotation is finished. The most specific rule wins in Vault, so it lists all it needs.
path "{kv}/data/_rescind-pending/*" {
  capabilities = ["create", "read", "update"]
}
path "{kv}/metadata/_rescind-pending/*" {
  capabilities = ["read", "patch", "delete"]
}

# Leases under the mounts in scope: look up, revoke.
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/revoke/{pki}/*" {
  capabilities = ["update"]
}
path "sys/leases/revoke/{lease}/*" {
  capabilities = ["update"]
}
path "sys/leases/revoke/auth/{approle}/login/*" {
  capabilities = ["update"]
}

# Database static roles and connections' root credentials (LeaseMounts that are database engines): read the
# role or the connection (never a password), have Vault rotate it. A root rotation runs only in an approved run.
path "{lease}/static-roles/*" {
  capabilities = ["read"]
}
path "{lease}/rotate-role/*" {
  capabilities = ["update"]
}
path "{lease}/config/*" {
  capabilities = ["read"]
}
path "{lease}/rotate-root/*" {
  capabilities = ["update"]
}
