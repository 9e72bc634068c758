# rescind-reporter: InventoryReportFunction. Counts what exists and what lives too long; reads and lists only.

# Tokens: every accessor (listing them requires sudo), each one's TTL.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# AppRole: every role's TTLs and secret-ids, and the mount's.
path "auth/{approle}/role" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+" {
  capabilities = ["read"]
}
path "auth/{approle}/role/+/secret-id" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}
path "sys/mounts/auth/{approle}/tune" {
  capabilities = ["read"]
}

# PKI: every role's TTLs, the mount's, every certificate (each one an unauthenticated read).
path "{pki}/roles" {
  capabilities = ["list"]
}
path "{pki}/roles/+" {
  capabilities = ["read"]
}
path "sys/mounts/{pki}/tune" {
  capabilities = ["read"]
}
path "{pki}/certs" {
  capabilities = ["list"]
}

# KV v2: every secret's age.
path "{kv}/metadata/*" {
  capabilities = ["read", "list"]
}

# Database mounts among the LeaseMounts: every static role and the age of its password.
path "{lease}/static-roles" {
  capabilities = ["list"]
}
path "{lease}/static-roles/*" {
  capabilities = ["read"]
}
