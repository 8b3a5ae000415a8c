"""The JSON transport on httpx.MockTransport: answers become frozen wire models that
tolerate new fields, a wrong shape is an error that says which, and every exchange is
observed once with its code."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pydantic
import pytest
from pydantic import Field

from daemon.cloud.errors import ApiError, InvalidResponseError, PermanentError
from daemon.cloud.transport import JsonApi, WireModel
from daemon.config.settings import RetrySettings

Handler = Callable[[httpx.Request], httpx.Response]


class Answer(WireModel):
    job_id: str = Field(alias="jobId")


def refused(response: httpx.Response, operation: str) -> ApiError:
    return PermanentError("refused", service="test", operation=operation, status=400)


async def never_sleep(seconds: float) -> None:
    raise AssertionError("nothing here is retried")


def api(handler: Handler, seen: list[tuple[str, str, str]] | None = None) -> JsonApi:
    def observe(service: str, operation: str, code: str, duration_s: float) -> None:
        if seen is not None:
            seen.append((service, operation, code))

    http = httpx.AsyncClient(base_url="http://api.test", transport=httpx.MockTransport(handler))
    return JsonApi(
        http,
        "test",
        "p1",
        map_error=refused,
        retry=RetrySettings(attempts=1),
        sleep=never_sleep,
        observe=observe,
    )


async def test_an_answer_with_fields_the_docs_do_not_name_is_parsed_and_frozen() -> None:
    answer = await api(
        lambda r: httpx.Response(200, json={"jobId": "j-1", "addedLater": {"x": 1}})
    ).call("op", "GET", "/x", Answer)
    assert answer.job_id == "j-1"
    with pytest.raises(pydantic.ValidationError):
        answer.job_id = "j-2"  # type: ignore[misc]
    assert Answer(job_id="j-3").job_id == "j-3"  # by name as well as by wire alias


async def test_a_2xx_answer_of_the_wrong_shape_says_which_model_and_field() -> None:
    with pytest.raises(InvalidResponseError) as caught:
        await api(lambda r: httpx.Response(200, json={"job": "j-1"})).call(
            "op", "GET", "/x", Answer
        )
    assert "unexpected Answer body" in str(caught.value)
    assert "jobId" in str(caught.value)
    assert caught.value.code == "invalid_response"


async def test_every_exchange_is_observed_with_its_code_and_errors_are_mapped() -> None:
    seen: list[tuple[str, str, str]] = []
    with pytest.raises(PermanentError, match="refused"):
        await api(lambda r: httpx.Response(400, json={}), seen).call("op", "GET", "/x", Answer)
    await api(lambda r: httpx.Response(200, json={"jobId": "j"}), seen).call(
        "ok", "GET", "/x", Answer
    )
    assert seen == [("test", "op", "400"), ("test", "ok", "200")]
