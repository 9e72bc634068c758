# rescind-verifier: VerifyResponseFunction.
# Reads every acted-on reference back: the token and the secret-id by accessor, the entity's flag, the KV
# secret's versions, the lease. The CRL and each certificate are unauthenticated reads.

path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "identity/entity/id/*" {
  capabilities = ["read"]
}
path "auth/{approle}/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}
path "{kv}/data/*" {
  capabilities = ["read"]
}
path "{kv}/metadata/*" {
  capabilities = ["read"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Database static roles' last rotation, and a rotated root's connection (LeaseMounts).
path "{lease}/static-roles/*" {
  capabilities = ["read"]
}
path "{lease}/config/*" {
  capabilities = ["read"]
}
