"""In-process retries of transient errors, only on the paths no Step Functions Retry covers.

Where, and why there:
- the sweeps (`ActionEngine.execute_or_fail`): EventBridge Scheduler invokes them asynchronously, and Lambda's
  own retry would run the whole sweep again, so one action is retried in place;
- the CLI's direct mode (`rescind_cli.direct`): no stack, no state machine, the responder waits at the prompt.

Everywhere else a task raises its TransientError and the state machine's Retry (statemachines/*.asl.json, with
full jitter) runs the task again; AWS calls are first retried within the call by botocore's standard mode
(rescind.aws.session.AWS_CLIENT_CONFIG). Three layers would multiply: none is added here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from rescind.exceptions import TransientError

T = TypeVar("T")


def retry_transient(
    attempt: Callable[[int], T],
    *,
    attempts: int,
    base_delay_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`attempt(n)` for n = 0, 1, ... until it returns or raises anything but a TransientError, at most `attempts`
    times; the last TransientError is raised. Between attempts: exponential backoff with full jitter."""
    for number in range(attempts - 1):
        try:
            return attempt(number)
        except TransientError:
            sleep(random.uniform(0, base_delay_seconds * 2**number))  # noqa: S311 - jitter, not a secret
    return attempt(attempts - 1)
