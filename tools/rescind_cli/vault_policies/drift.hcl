# rescind-drift: IndexDriftFunction. Samples the live server beside the issuance index; lists and reads only.

# Tokens: every accessor (listing them requires sudo), the sampled ones looked up.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# AppRole: every role's secret-id accessors, the sampled ones looked up.
path "auth/{approle}/role" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+/secret-id" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}

# PKI: every certificate and revoked serial (a certificate itself is an unauthenticated read).
path "{pki}/certs" {
  capabilities = ["list"]
}
path "{pki}/certs/revoked" {
  capabilities = ["list"]
}

# Leases under the LeaseMounts, the sampled ones looked up.
path "sys/leases/lookup/{lease}/*" {
  capabilities = ["list", "sudo"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}
