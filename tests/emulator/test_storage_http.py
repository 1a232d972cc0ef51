"""The emulated Cloud Storage JSON API over plain HTTP: uploads, reads, errors, auth, buckets."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import google_crc32c
import httpx
import pytest

from emulator import EmulatorConfig, Grant, running_emulator
from tests.clocks import FakeClock
from tests.emulator.helpers import AUTH, CLOUD, GRANTS, OWNER, bearer

BUCKET = "training-files"
UPLOAD = f"/upload/storage/v1/b/{BUCKET}/o"
OBJECTS = f"/storage/v1/b/{BUCKET}/o"
STORAGE_READER = Grant("client-s", "secret-s", "refresh-s", (AUTH + "devstorage.read_only",))
STORAGE_WRITER = Grant("client-w", "secret-w", "refresh-w", (AUTH + "devstorage.read_write",))


@pytest.fixture
def config() -> EmulatorConfig:
    """The test grants plus Cloud Storage read-only and read-write ones."""
    return EmulatorConfig(grants=(*GRANTS, STORAGE_READER, STORAGE_WRITER))


@pytest.fixture
async def writer(http: httpx.AsyncClient) -> dict[str, str]:
    """Authorization header with the cloud-platform scope."""
    return await bearer(http, CLOUD)


def crc32c_of(data: bytes) -> str:
    """The CRC32C of ``data`` as the JSON API writes it (big-endian, base64)."""
    value: int = google_crc32c.value(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324


def json_api_error(response: httpx.Response) -> dict[str, Any]:
    """The JSON API error, checking the envelope's shape; its one ``errors`` item."""
    envelope = response.json()
    assert set(envelope) == {"error"}
    error = envelope["error"]
    assert set(error) == {"code", "message", "errors"}
    assert error["code"] == response.status_code
    (item,) = error["errors"]
    assert item["domain"] == "global" and item["message"] == error["message"]
    found: dict[str, Any] = item
    return found


async def media_upload(
    http: httpx.AsyncClient, headers: dict[str, str], name: str, data: bytes, **params: Any
) -> httpx.Response:
    return await http.post(
        UPLOAD,
        params={"uploadType": "media", "name": name, **params},
        content=data,
        headers={**headers, "Content-Type": "application/jsonl"},
    )


def multipart_body(resource: dict[str, Any], data: bytes) -> tuple[bytes, str]:
    boundary = "emulator-test-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
        + json.dumps(resource).encode()
        + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; boundary="{boundary}"'


async def test_media_upload_answers_the_object_resource(
    http: httpx.AsyncClient, writer: dict[str, str], clock: FakeClock
) -> None:
    data = b'{"a": 1}\n' * 50

    response = await media_upload(http, writer, "runs/r1/train.jsonl", data)

    assert response.status_code == 200, response.text
    resource = response.json()
    generation = resource["generation"]
    assert resource["kind"] == "storage#object"
    assert resource["name"] == "runs/r1/train.jsonl" and resource["bucket"] == BUCKET
    assert resource["id"] == f"{BUCKET}/runs/r1/train.jsonl/{generation}"
    assert isinstance(generation, str) and int(generation) > 0
    assert resource["metageneration"] == "1"
    assert resource["size"] == str(len(data))
    assert resource["crc32c"] == crc32c_of(data) and resource["md5Hash"] == md5_of(data)
    assert resource["contentType"] == "application/jsonl"
    assert resource["timeCreated"] == resource["updated"] == "2026-11-21T13:40:00.000Z"
    assert resource["selfLink"].endswith(f"{OBJECTS}/runs%2Fr1%2Ftrain.jsonl")
    assert "metadata" not in resource
    media = await http.get(resource["mediaLink"], headers=writer)
    assert media.content == data


async def test_get_metadata_and_media_by_encoded_name(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    data = b"line\n" * 10
    uploaded = (await media_upload(http, writer, "a/b c/d?.jsonl", data)).json()
    path = f"{OBJECTS}/a%2Fb%20c%2Fd%3F.jsonl"

    metadata = await http.get(path, headers=writer)
    media = await http.get(path, params={"alt": "media"}, headers=writer)
    download = await http.get("/download" + path, params={"alt": "media"}, headers=writer)

    assert metadata.status_code == 200 and metadata.json() == uploaded
    for answer in (media, download):
        assert answer.status_code == 200 and answer.content == data
        assert answer.headers["x-goog-hash"] == f"crc32c={crc32c_of(data)},md5={md5_of(data)}"
        assert answer.headers["x-goog-generation"] == uploaded["generation"]
        assert answer.headers["content-type"] == "application/jsonl"


async def test_multipart_upload_takes_name_type_and_metadata_from_the_resource(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    data = b"hello multipart"
    resource = {"name": "mp.txt", "metadata": {"run": "r-1"}, "crc32c": crc32c_of(data)}
    body, content_type = multipart_body(resource, data)

    response = await http.post(
        UPLOAD,
        params={"uploadType": "multipart"},
        content=body,
        headers={**writer, "Content-Type": content_type},
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["name"] == "mp.txt" and answer["contentType"] == "text/plain"
    assert answer["metadata"] == {"run": "r-1"} and answer["size"] == str(len(data))
    media = await http.get(f"{OBJECTS}/mp.txt", params={"alt": "media"}, headers=writer)
    assert media.content == data


async def test_multipart_upload_with_a_wrong_crc32c_writes_nothing(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body, content_type = multipart_body({"name": "bad.txt", "crc32c": crc32c_of(b"other")}, b"x")

    response = await http.post(
        UPLOAD,
        params={"uploadType": "multipart"},
        content=body,
        headers={**writer, "Content-Type": content_type},
    )

    assert response.status_code == 400
    assert json_api_error(response)["reason"] == "invalid"
    assert (await http.get(f"{OBJECTS}/bad.txt", headers=writer)).status_code == 404


async def test_create_only_upload_is_412_condition_not_met(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    first = await media_upload(http, writer, "once", b"1", ifGenerationMatch="0")
    second = await media_upload(http, writer, "once", b"2", ifGenerationMatch="0")
    generation = first.json()["generation"]
    matching = await media_upload(http, writer, "once", b"3", ifGenerationMatch=generation)
    not_matching = await media_upload(http, writer, "once", b"4", ifGenerationNotMatch="0")

    assert first.status_code == 200
    assert second.status_code == 412
    item = json_api_error(second)
    assert item["reason"] == "conditionNotMet"
    assert matching.status_code == 200
    assert not_matching.status_code == 200
    assert int(not_matching.json()["generation"]) > int(matching.json()["generation"])
    gone = await media_upload(http, writer, "absent", b"5", ifGenerationNotMatch="0")
    assert gone.status_code == 412


async def test_missing_object_is_404_in_the_json_api_envelope(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    for response in (
        await http.get(f"{OBJECTS}/nothing", headers=writer),
        await http.get(f"/download{OBJECTS}/nothing", params={"alt": "media"}, headers=writer),
        await http.delete(f"{OBJECTS}/nothing", headers=writer),
    ):
        assert response.status_code == 404
        item = json_api_error(response)
        assert item["reason"] == "notFound"
        assert item["message"] == f"No such object: {BUCKET}/nothing"


async def test_a_stale_generation_is_404(http: httpx.AsyncClient, writer: dict[str, str]) -> None:
    old = (await media_upload(http, writer, "gen", b"old")).json()["generation"]
    new = (await media_upload(http, writer, "gen", b"new")).json()["generation"]

    stale = await http.get(f"{OBJECTS}/gen", params={"generation": old}, headers=writer)
    current = await http.get(
        f"{OBJECTS}/gen", params={"generation": new, "alt": "media"}, headers=writer
    )

    assert stale.status_code == 404
    assert current.content == b"new"


async def test_byte_ranges(http: httpx.AsyncClient, writer: dict[str, str]) -> None:
    data = bytes(range(100))
    await media_upload(http, writer, "r.bin", data)
    path = f"/download{OBJECTS}/r.bin"

    async def get_range(header: str) -> httpx.Response:
        return await http.get(path, params={"alt": "media"}, headers={**writer, "Range": header})

    middle, tail, open_end, beyond = (
        await get_range("bytes=10-19"),
        await get_range("bytes=-5"),
        await get_range("bytes=90-"),
        await get_range("bytes=100-"),
    )

    assert middle.status_code == 206 and middle.content == data[10:20]
    assert middle.headers["content-range"] == "bytes 10-19/100"
    assert middle.headers["x-goog-hash"].startswith(f"crc32c={crc32c_of(data)},")
    assert tail.content == data[-5:] and open_end.content == data[90:]
    assert beyond.status_code == 416
    assert json_api_error(beyond)["reason"] == "requestedRangeNotSatisfiable"


async def test_delete_answers_204_and_removes_the_object(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await media_upload(http, writer, "d", b"x")

    deleted = await http.delete(f"{OBJECTS}/d", headers=writer)

    assert deleted.status_code == 204 and deleted.content == b""
    assert (await http.get(f"{OBJECTS}/d", headers=writer)).status_code == 404
    inspected = (await http.get("/_emulator/storage/objects")).json()
    assert inspected == {"objects": []}


async def test_list_pages_by_token_and_omits_empty_items(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    for name in ["p/3", "p/1", "p/2", "q/1"]:
        await media_upload(http, writer, name, name.encode())

    first = (
        await http.get(OBJECTS, params={"prefix": "p/", "maxResults": 2}, headers=writer)
    ).json()
    second = (
        await http.get(
            OBJECTS,
            params={"prefix": "p/", "maxResults": 2, "pageToken": first["nextPageToken"]},
            headers=writer,
        )
    ).json()
    empty = (await http.get(OBJECTS, params={"prefix": "z/"}, headers=writer)).json()

    assert first["kind"] == "storage#objects"
    assert [item["name"] for item in first["items"]] == ["p/1", "p/2"]
    assert [item["name"] for item in second["items"]] == ["p/3"]
    assert "nextPageToken" not in second
    assert empty == {"kind": "storage#objects"}


async def test_inspection_lists_every_object(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await media_upload(http, writer, "i/1", b"12345")
    other = await http.post(
        "/upload/storage/v1/b/other-bucket/o",
        params={"uploadType": "media", "name": "x"},
        content=b"",
        headers=writer,
    )

    inspected = (await http.get("/_emulator/storage/objects")).json()["objects"]

    assert [(o["bucket"], o["name"], o["size"]) for o in inspected] == [
        ("other-bucket", "x", 0),
        (BUCKET, "i/1", 5),
    ]
    assert inspected[0]["generation"] == other.json()["generation"]
    assert inspected[1]["crc32c"] == crc32c_of(b"12345")


async def test_scopes(http: httpx.AsyncClient) -> None:
    tuning_only, reader, read_write = (
        await bearer(http, OWNER),
        await bearer(http, STORAGE_READER),
        await bearer(http, STORAGE_WRITER),
    )

    refused = await media_upload(http, tuning_only, "s", b"x")
    written = await media_upload(http, read_write, "s", b"x")
    read = await http.get(f"{OBJECTS}/s", headers=reader)
    not_written = await media_upload(http, reader, "s", b"y")
    not_deleted = await http.delete(f"{OBJECTS}/s", headers=reader)

    assert refused.status_code == 403
    assert json_api_error(refused)["reason"] == "insufficientPermissions"
    assert written.status_code == 200 and read.status_code == 200
    assert not_written.status_code == 403 and not_deleted.status_code == 403


async def test_no_token_is_401_required(http: httpx.AsyncClient) -> None:
    response = await http.get(OBJECTS)

    assert response.status_code == 401
    assert json_api_error(response)["reason"] == "required"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_bad_names_and_parameters_are_400(
    http: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    bad_bucket = await http.get("/storage/v1/b/Bad_Bucket!/o", headers=writer)
    no_name = await http.post(UPLOAD, params={"uploadType": "media"}, content=b"x", headers=writer)
    long_name = await media_upload(http, writer, "n" * 1025, b"x")
    bad_type = await http.post(UPLOAD, params={"uploadType": "nope", "name": "x"}, headers=writer)
    bad_condition = await media_upload(http, writer, "x", b"x", ifGenerationMatch="-1")

    for response in (bad_bucket, no_name, long_name, bad_type, bad_condition):
        assert response.status_code == 400, response.text
    assert json_api_error(no_name)["reason"] == "required"
    assert json_api_error(bad_bucket)["reason"] == "invalid"


async def test_configured_buckets_only() -> None:
    config = EmulatorConfig(grants=GRANTS, storage_buckets=frozenset({"known-bucket"}))
    async with (
        running_emulator(config, FakeClock()) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        headers = await bearer(http, CLOUD)
        known = await http.get("/storage/v1/b/known-bucket/o", headers=headers)
        unknown = await http.post(
            "/upload/storage/v1/b/unknown-bucket/o",
            params={"uploadType": "media", "name": "x"},
            content=b"x",
            headers=headers,
        )

    assert known.status_code == 200
    assert unknown.status_code == 404
    assert json_api_error(unknown)["reason"] == "notFound"


async def test_objects_over_the_size_limit_are_413() -> None:
    config = EmulatorConfig(grants=GRANTS, storage_max_object_bytes=1000)
    async with (
        running_emulator(config, FakeClock()) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        headers = await bearer(http, CLOUD)
        fits = await media_upload(http, headers, "fits", b"x" * 1000)
        too_big = await media_upload(http, headers, "big", b"x" * 1001)
        inspected = (await http.get("/_emulator/storage/objects")).json()["objects"]

    assert fits.status_code == 200
    assert too_big.status_code == 413
    assert [o["name"] for o in inspected] == ["fits"]
