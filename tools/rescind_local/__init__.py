"""The embedded local stack: a real OpenBao server and moto. Used by the tests and the demo, never deployed."""

from rescind_local.aws import LOCAL_ACCOUNT_ID, LOCAL_REGION, local_aws
from rescind_local.openbao import LocalOpenBao, find_bao_binary
from rescind_local.template import create_table_from_template, load_template

__all__ = [
    "LOCAL_ACCOUNT_ID",
    "LOCAL_REGION",
    "LocalOpenBao",
    "create_table_from_template",
    "find_bao_binary",
    "load_template",
    "local_aws",
]
