# rescind-rotation-hook: RotatePostgresFunction (the PostgreSQL rotation hook: setSecret and testSecret).

# The secret a rotation names (its current value, and its custom_metadata: the master secret it may name) and its
# pending value at the staging copy (<kv>/_rescind-pending/<path>, under the same globs). Read only: Rescind
# writes both. Vault cannot grant by custom_metadata, so this reads every secret of the KV mounts: the hook runs
# only what it is given (no value leaves it), and its IAM role may be invoked only by Rescind's rotating functions.
path "{kv}/data/*" {
  capabilities = ["read"]
}
path "{kv}/metadata/*" {
  capabilities = ["read"]
}
