"""Rescind: event-driven rotation and revocation for non-human identities."""

import gc
import os

# A Lambda cold start: the handler's modules and their libraries allocate hundreds of thousands of objects that
# live as long as the process, and the cyclic collector traverses them again and again while they load (about 5%
# of the cold start's instructions, bench/cold_start_instructions.py). It is paused from the first import of this
# package until rescind.observability.observed_handler wraps the handler, the end of the handler module's import
# (which then resumes it and freezes what was loaded). Not in `sam local` or the local stack (AWS_SAM_LOCAL), nor
# anywhere outside Lambda.
PAUSED_COLLECTOR_AT_IMPORT = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and not os.environ.get("AWS_SAM_LOCAL")
if PAUSED_COLLECTOR_AT_IMPORT and gc.isenabled():
    gc.disable()
