"""ListTuningJobs: newest first, AIP-158 paging, filters on state and labels."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.harness import State, System
from tests.rpc_errors import violations


async def test_paging_walks_three_pages_newest_first(api_only: System) -> None:
    created = [(await api_only.create(display_name=f"job {i}")).name for i in range(7)]
    pages, token = [], ""
    while True:
        page = await api_only.list_jobs(page_size=3, page_token=token)
        pages.append([j.name for j in page.tuning_jobs])
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [name for page in pages for name in page] == created[::-1]


async def test_an_exact_last_page_has_no_token(api_only: System) -> None:
    for _ in range(3):
        await api_only.create()
    page = await api_only.list_jobs(page_size=3)
    assert len(page.tuning_jobs) == 3
    assert page.next_page_token == ""


async def test_filter_on_state_and_labels(api_only: System) -> None:
    keep = await api_only.create(labels={"team": "search"})
    await api_only.create(labels={"team": "ads"})
    cancelled = await api_only.create(labels={"team": "search"})
    await api_only.cancel(cancelled.name)

    def names(response: object) -> list[str]:
        return [j.name for j in response.tuning_jobs]  # type: ignore[attr-defined]

    assert names(await api_only.list_jobs(filter='labels.team = "search"')) == [
        cancelled.name,
        keep.name,
    ]
    assert names(await api_only.list_jobs(filter="state = CANCELLED")) == [cancelled.name]
    both = 'state = (QUEUED OR RUNNING) AND labels.team = "search"'
    assert names(await api_only.list_jobs(filter=both)) == [keep.name]
    assert [j.state for j in (await api_only.list_jobs(filter="state = QUEUED")).tuning_jobs] == [
        State.QUEUED,
        State.QUEUED,
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_token": "garbage"}, "page_token"),
        ({"filter": "state = SOMETHING"}, "filter"),
        ({"filter": "owner = me"}, "filter"),
        ({"page_size": -1}, "page_size"),
    ],
)
async def test_bad_list_requests_name_the_field(
    api_only: System, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.list_jobs(**fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(caught.value)


async def test_a_token_is_refused_with_another_filter(api_only: System) -> None:
    for _ in range(3):
        await api_only.create()
    token = (await api_only.list_jobs(page_size=1)).next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api_only.list_jobs(page_size=1, page_token=token, filter="state = QUEUED")
    assert "page_token" in violations(caught.value)
