"""Which failures mean "the API server cannot be asked now" (``adapters/apiserver.unavailable``).

The loops that retry on their own (the escalation look, the Ready rechecks) log those as a
warning without a traceback; anything else stays an error with its traceback.
"""

import logging

import aiohttp
import kubernetes
import pytest
import urllib3

from oncall_operator.adapters import apiserver


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (apiserver.ApiError(503, "the request has been made before all known HTTP paths have been installed"), True),
        (apiserver.ApiError(429, "storage is (re)initializing"), True),
        (kubernetes.client.ApiException(status=500), True),
        (aiohttp.ClientConnectionError("Cannot connect to host"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),
        (urllib3.exceptions.MaxRetryError(None, "/apis", "refused"), True),  # type: ignore[arg-type]
        (apiserver.ApiError(409, "conflict"), False),  # answered: a decision, not an outage
        (apiserver.ApiError(422, "invalid"), False),
        (kubernetes.client.ApiException(status=403), False),
        (KeyError("status"), False),  # a bug: its traceback is wanted
    ],
)
def test_what_counts_as_the_api_server_unavailable(error: BaseException, unavailable: bool) -> None:
    assert (apiserver.unavailable(error) is not None) is unavailable


def test_an_outage_is_a_warning_and_a_bug_an_error_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.unavailable")
    with caplog.at_level(logging.WARNING):
        apiserver.log_retried(log, ConnectionRefusedError(111, "refused"), "Incident %s/%s: look failed", "ns", "i")
        apiserver.log_retried(log, KeyError("status"), "Incident %s/%s: look failed", "ns", "j")
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING and outage.exc_info is None
    assert outage.getMessage() == "Incident ns/i: look failed (the API server is unreachable (ConnectionRefusedError))"
    assert (
        bug.levelno == logging.ERROR and bug.exc_info is not None and bug.getMessage() == "Incident ns/j: look failed"
    )
