# rescind-locator: StartLeakResponseFunction.
# Resolves a leaked value to the credential it is, before the response starts: a token by lookup, a secret-id
# by lookup on each role in scope, a certificate by its serial, a KV value by its fingerprint, a database password
# by comparing it with each static role's current one, a value Vault issued (a dynamic database password) by its
# audit HMAC in the issuance index.

# A leaked token: look it up by value. The accessor list and lookups are the kill first's live bound on the token's
# tree, read only without the issuance index (whether its entity holds another token is the run's planner's).
path "auth/token/lookup" {
  capabilities = ["update"]
}
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# A leaked secret-id: every role of the AppRole mounts in scope, then a lookup by value on each.
path "auth/{approle}/role" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+/secret-id/lookup" {
  capabilities = ["update"]
}

# A leaked KV value: the versions the fingerprint index names are read to confirm the match.
path "{kv}/data/*" {
  capabilities = ["read"]
}

# A leaked database password: each static role's current password on the database mounts among LeaseMounts, compared
# in memory by HMAC and dropped (at most DATABASE_LEAK_MAX_ROLES roles are read).
path "{lease}/static-roles" {
  capabilities = ["list"]
}
path "{lease}/static-creds/*" {
  capabilities = ["read"]
}

# A value Vault issued: the audit device's HMAC of it (AUDIT_DEVICE_PATH), matched in the issuance index; then
# whether the lease it names is still there (a token's accessor and a secret-id are looked up above).
path "sys/audit-hash/+" {
  capabilities = ["update"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}
