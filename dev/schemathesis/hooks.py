"""Checks schemathesis runs beside its own (loaded with SCHEMATHESIS_HOOKS=hooks).

`viewer_writes_refused`: when the run is signed in as a viewer (BSS_FUZZ_ROLE=viewer), no
write may succeed: any request to the BSS API with a method other than GET/HEAD/OPTIONS
must be refused (403 for the role; 401 when schemathesis left the session out on purpose;
405 for a method the path does not have; 4xx for bad input), never answered 2xx or 3xx.
"""
import os

import schemathesis

READS = {"GET", "HEAD", "OPTIONS"}


@schemathesis.check
def viewer_writes_refused(ctx, response, case):
    if os.environ.get("BSS_FUZZ_ROLE") != "viewer":
        return None
    if case.method.upper() not in READS and case.path.startswith("/api/") and response.status_code < 400:
        raise AssertionError(
            f"a viewer's {case.method} {case.path} was answered {response.status_code}: writes must be refused"
        )
    return None
