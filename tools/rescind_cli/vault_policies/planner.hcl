# rescind-planner: PlanOffboardingFunction, PlanLeakResponseFunction.
# Finds what a workload holds (discovery by metadata, URI SAN and custom_metadata), looks up what a leak
# named, and checks each reference exists before it goes into the plan. Reads and lists; changes nothing.

# Tokens: every accessor (listing them requires sudo), each one's metadata, and whether it can create children.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}
path "auth/token/roles" {
  capabilities = ["list"]
}
path "sys/capabilities-accessor" {
  capabilities = ["update"]
}

# Identity entities: by alias name in the listing, else by metadata.
path "identity/entity/id" {
  capabilities = ["list"]
}
path "identity/entity/id/*" {
  capabilities = ["read"]
}

# AppRole secret-ids: every role, every secret-id accessor, each one's metadata.
path "auth/{approle}/role" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+/secret-id" {
  capabilities = ["list"]
}
path "auth/{approle}/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}

# PKI certificates: every serial (and the revoked ones), each certificate's URI SAN.
path "{pki}/certs" {
  capabilities = ["list"]
}
path "{pki}/certs/revoked" {
  capabilities = ["list"]
}

# KV v2 secrets: every path's custom_metadata.
path "{kv}/metadata/*" {
  capabilities = ["read", "list"]
}

# Leases: whether one still exists.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Database static roles and connections a run names: whether each exists (LeaseMounts).
path "{lease}/static-roles/*" {
  capabilities = ["read"]
}
path "{lease}/config/*" {
  capabilities = ["read"]
}
