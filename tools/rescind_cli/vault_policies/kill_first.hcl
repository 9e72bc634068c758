# rescind-locator's second policy: StartLeakResponseFunction kills a located leak first (rescind/leaks/kill.py).
# Only the reversible kill of the exactly located credential, read back: revoke a token or a secret-id. Nothing here
# disables an entity, deletes, rotates or revokes a certificate or a lease: the run does that.

# Tokens: revoke by accessor (with its child tree, each possible child seen first: token roles and capabilities
# tell whether it can have any), and read it back. lookup-accessor and the accessor list are in locator.hcl.
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}
path "auth/token/roles" {
  capabilities = ["list"]
}
path "sys/capabilities-accessor" {
  capabilities = ["update"]
}

# AppRole secret-ids: look up by accessor (its act and read-back), destroy.
path "auth/{approle}/role/+/secret-id-accessor/lookup" {
  capabilities = ["update"]
}
path "auth/{approle}/role/+/secret-id-accessor/destroy" {
  capabilities = ["update"]
}
