"""The AWS adapter: a cross-account client factory and one module per AWS credential kind.

Submodules are imported on use, so importing `rescind.aws` does not import boto3.
"""
