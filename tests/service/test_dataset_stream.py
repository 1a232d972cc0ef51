"""JSONL uploads larger than a block: checked as they stream, stored only when valid."""

from __future__ import annotations

import base64
import json

import google_crc32c
import grpc
import pytest

from service.dataset_parsing import DatasetFormat, DatasetOptions, parse_dataset
from service.dataset_stream import BLOCK_BYTES, LineBlocks, StreamCheck, check_block, in_window
from tests.conftest import SystemFactory
from tests.harness import State, System
from tests.rpc_errors import violations
from tuning.v1 import tuning_service_pb2


def lines(count: int, bad: dict[int, str] | None = None) -> bytes:
    """`count` examples of about 100 bytes, with line N (1-based) replaced by bad[N]."""
    rows = [
        json.dumps({"text_input": f"question: what follows {n}? " + "x" * 40, "output": str(n)})
        for n in range(count)
    ]
    for number, text in (bad or {}).items():
        rows[number - 1] = text
    return ("\n".join(rows) + "\n").encode()


def streamed_report(content: bytes, options: DatasetOptions, block_bytes: int) -> object:
    """What the streaming check says of `content`, cut into blocks of `block_bytes`."""
    blocks = LineBlocks(block_bytes=block_bytes, max_line_bytes=1 << 20)
    check = StreamCheck(options)
    cut = [
        block for at in range(0, len(content), 777) for block in blocks.feed(content[at : at + 777])
    ]
    cut += blocks.finish()
    assert len(cut) >= len(content) // (block_bytes + 777)  # it was cut, at lines
    for block in cut:
        check.add(check_block(block, options, in_window(block)))
    return check.report(len(content), complete=True)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {
            7: "not json",
            500: '{"text_input": "only input"}',
            999: '{"text_input": 3, "output": "x"}',
        },
        {3: '{"text_input": "\\ud800", "output": "x"}', 10: "", 11: "   "},
    ],
)
def test_blocks_reach_the_verdict_of_the_whole_file_parse(bad: dict[int, str]) -> None:
    content = lines(1000, bad)
    options = DatasetOptions(max_bytes=len(content))
    whole = parse_dataset(content, DatasetFormat.JSONL, options)
    for block_bytes in (4096, 40_000, len(content) + 1):
        streamed = streamed_report(content, options, block_bytes)
        assert streamed.violations == whole.violations  # type: ignore[attr-defined]
        assert streamed.stats == whole.stats  # type: ignore[attr-defined]
        assert streamed.warnings == whole.warnings  # type: ignore[attr-defined]


async def test_a_large_upload_is_stored_whole_in_its_file(system: System) -> None:
    content = lines(BLOCK_BYTES * 2 // 100 + 500)  # three blocks
    dataset = await system.upload(content, chunk_bytes=256 * 1024)
    assert dataset.stats.example_count == content.count(b"\n")
    assert dataset.stats.size_bytes == len(content)
    files = await system.stored_files()
    assert len(files) == 1 and files[0].endswith(dataset.name.split("/")[1] + ".jsonl")
    stored = await system.stored_object(files[0])
    crc = google_crc32c.value(content).to_bytes(4, "big")
    assert (stored["size"], stored["crc32c"]) == (len(content), base64.b64encode(crc).decode())


async def test_a_bad_line_in_a_late_block_refuses_it_all_and_stores_nothing(
    system: System,
) -> None:
    count = BLOCK_BYTES * 2 // 100 + 500
    content = lines(count, {count - 3: '{"text_input": "q"}'})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await system.upload(content, chunk_bytes=256 * 1024)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"lines[{count - 3}].output" in violations(caught.value)
    assert await system.stored_files() == []


async def test_a_gemini_api_job_refuses_a_dataset_too_large_to_send_inline(
    make_system: SystemFactory,
) -> None:
    async with make_system(dataset_max_bytes=20_000) as system:
        dataset = await system.upload(lines(400))  # 40 KB: fine for Vertex AI
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.create(dataset=dataset.name, training_examples=[])
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Gemini API" in violations(caught.value)["tuning_job.dataset"]


async def test_a_job_has_its_own_copy_until_it_is_submitted(system: System) -> None:
    dataset = await system.upload(lines(40))
    job = await system.create(dataset=dataset.name, training_examples=[])
    delete = tuning_service_pb2.DeleteDatasetRequest(name=dataset.name)
    await system.stub.DeleteDataset(delete, metadata=system.auth())
    done = await system.finish_training(job.name)
    assert done.state == State.SUCCEEDED  # on its copy: the dataset's file is discarded
    assert done.progress.total_steps > 0
