# rescind-sweeper: RotationByAgeFunction, TtlCeilingsFunction, PkiHygieneFunction (the schedules).

# Rotation by age: every KV path's age and tags; rotate the stale ones; destroy their old versions.
path "{kv}/metadata/*" {
  capabilities = ["read", "list", "patch"]
}
path "{kv}/data/*" {
  capabilities = ["read", "update"]
}
path "{kv}/destroy/*" {
  capabilities = ["update"]
}

# Rotation by age of database static roles (a `static_role_prefix` rule on a LeaseMounts database mount): every
# static role's last rotation (never its password); Vault rotates the stale ones.
path "{lease}/static-roles" {
  capabilities = ["list"]
}
path "{lease}/static-roles/*" {
  capabilities = ["read"]
}
path "{lease}/rotate-role/*" {
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

# TTL ceilings: every token, token role, AppRole role, PKI role, mount and lease over its ceiling, lowered.
# PKI leases are listed and only flagged (they cannot be renewed); LeaseMounts' leases are lowered by renewal.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/renew-accessor" {
  capabilities = ["update"]
}
path "auth/token/roles" {
  capabilities = ["list"]
}
path "auth/token/roles/+" {
  capabilities = ["read", "update"]
}
path "auth/{approle}/role" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+" {
  capabilities = ["read", "update"]
}
path "sys/mounts/auth/{approle}/tune" {
  capabilities = ["read", "update"]
}
path "sys/mounts/{pki}/tune" {
  capabilities = ["read", "update"]
}
path "{pki}/roles" {
  capabilities = ["list"]
}
path "{pki}/roles/+" {
  capabilities = ["read", "patch"]
}
path "sys/leases/lookup/{pki}/*" {
  capabilities = ["list", "sudo"]
}
path "sys/leases/lookup/{lease}/*" {
  capabilities = ["list", "sudo"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/renew/{lease}/*" {
  capabilities = ["update"]
}

# PKI hygiene: every certificate and revoked serial, tidy, rebuild a stale CRL.
path "{pki}/certs" {
  capabilities = ["list"]
}
path "{pki}/certs/revoked" {
  capabilities = ["list"]
}
path "{pki}/tidy" {
  capabilities = ["update"]
}
path "{pki}/tidy-status" {
  capabilities = ["read"]
}
path "{pki}/crl/rotate" {
  capabilities = ["read"]
}
