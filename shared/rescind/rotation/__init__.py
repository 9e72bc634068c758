"""The rotation contract shared by KV v2 and Secrets Manager: declared fields, generators, and the hook."""
