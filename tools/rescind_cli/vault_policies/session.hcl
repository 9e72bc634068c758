# Every role's own token (added to each policy by `rescind vault setup`): the functions' session renews it before
# it expires, and after a 403 looks it up to tell a dead token (log in again) from a denial (final). The actor and
# the TTL sweep also look it up to never revoke or lower their own token.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
