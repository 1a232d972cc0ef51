"""Every command with `--output json`, parsed, against the real API; and the failures a
person sees: the server's message and field violations, exit codes, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import TUNECTL, tunectl
from tests.harness import BASE_MODEL, State, System

pytestmark = pytest.mark.timeout(60)


def write_jsonl(path: Path, count: int = 20) -> Path:
    rows = [{"text_input": str(n), "output": str(n + 1)} for n in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


async def test_a_dataset_is_uploaded_listed_tuned_on_and_deleted(
    env: dict[str, str], tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "numbers.jsonl")
    uploaded = (await tunectl(env, "datasets", "upload", str(data), "--output", "json")).json()
    assert uploaded["name"].startswith("datasets/d")
    assert uploaded["format"] == "JSONL"
    assert uploaded["stats"]["example_count"] == 20

    got = (await tunectl(env, "--output", "json", "datasets", "get", uploaded["name"])).json()
    assert got["stats"]["example_count"] == 20
    listed = (await tunectl(env, "datasets", "list", "--output", "json")).json()
    assert [d["name"] for d in listed["datasets"]] == [uploaded["name"]]

    base = ("jobs", "create", "--base-model", BASE_MODEL, "--dataset", uploaded["name"])
    hyper = ("--epochs", "2", "--batch-size", "4", "--learning-rate", "0.001")
    estimate = (await tunectl(env, *base, *hyper, "--validate", "--output", "json")).json()
    assert estimate["valid"] is True
    assert estimate["total_steps"] == 10  # 20 examples, 2 epochs, 4 a batch
    assert (await tunectl(env, "jobs", "list", "--output", "json")).json()["tuning_jobs"] == []

    labelled = (*base, *hyper, "--label", "team=search", "--display-name", "numbers")
    job = (await tunectl(env, *labelled, "--output", "json")).json()
    assert job["state"] == "QUEUED"
    assert job["dataset"] == uploaded["name"]
    assert job["hyperparameters"] == {"epoch_count": 2, "batch_size": 4, "learning_rate": 0.001}

    deleted = (
        await tunectl(env, "datasets", "delete", uploaded["name"], "--output", "json")
    ).json()
    assert deleted == {"deleted": uploaded["name"]}


async def test_jobs_from_an_examples_file_are_listed_by_filter_cancelled_and_deleted(
    env: dict[str, str], tmp_path: Path
) -> None:
    examples = write_jsonl(tmp_path / "examples.jsonl")
    create = ("jobs", "create", "--base-model", BASE_MODEL, "--examples", str(examples))
    first = (await tunectl(env, *create, "--label", "team=search", "--output", "json")).json()
    second = (await tunectl(env, *create, "--label", "team=ads", "--output", "json")).json()
    assert first["state"] == second["state"] == "QUEUED"

    async def listed(*flags: str) -> list[str]:
        answer = (await tunectl(env, "jobs", "list", *flags, "--output", "json")).json()
        return [job["name"] for job in answer["tuning_jobs"]]

    assert await listed() == [second["name"], first["name"]]  # newest first
    assert await listed("--label", "team=search") == [first["name"]]
    assert await listed("--state", "QUEUED", "--state", "RUNNING") == [
        second["name"],
        first["name"],
    ]
    assert await listed("--state", "SUCCEEDED") == []

    job_id = first["name"].removeprefix("tuningJobs/")  # a bare id is taken too
    got = (await tunectl(env, "jobs", "get", job_id, "--output", "json")).json()
    assert got["name"] == first["name"] and got["labels"] == {"team": "search"}

    cancelled = (await tunectl(env, "jobs", "cancel", first["name"], "--output", "json")).json()
    assert cancelled["state"] == "CANCELLED"
    deleted = (await tunectl(env, "jobs", "delete", second["name"], "--output", "json")).json()
    assert deleted == {"deleted": second["name"]}
    assert await listed() == [first["name"]]

    table = await tunectl(env, "jobs", "list")  # and for a person: a table
    assert table.code == 0
    assert first["name"] in table.stdout and "CANCELLED" in table.stdout


async def test_the_installed_console_script_answers(env: dict[str, str]) -> None:
    answer = await tunectl(env, "jobs", "list", "--output", "json", command=[str(TUNECTL)])
    assert answer.json() == {"tuning_jobs": [], "next_page_token": ""}


async def test_a_bad_dataset_prints_each_violation_by_line_and_exits_1(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text_input": "1", "output": "2"}\n'
        '{"text_input": "2"}\n'
        "not json\n"
        '{"text_input": "4", "output": "5"}\n'
    )
    answer = await tunectl(env, "datasets", "upload", str(bad))
    assert answer.code == 1
    lines = answer.stderr.splitlines()
    assert lines[0].startswith("error: INVALID_ARGUMENT: ")
    assert any(line.startswith("  lines[2].output: line 2") for line in lines), answer.stderr
    assert any(line.startswith("  lines[3]") and "line 3" in line for line in lines), answer.stderr
    assert "Traceback" not in answer.stderr and answer.stdout == ""

    scripted = await tunectl(env, "datasets", "upload", str(bad), "--output", "json")
    assert scripted.code == 1
    error = json.loads(scripted.stderr)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert {v["field"] for v in error["field_violations"]} >= {"lines[2].output", "lines[3]"}


async def test_the_servers_refusal_of_a_job_names_the_field(
    env: dict[str, str], tmp_path: Path
) -> None:
    examples = write_jsonl(tmp_path / "examples.jsonl")
    answer = await tunectl(
        env, "jobs", "create", "--base-model", "models/nope", "--examples", str(examples),
        "--epochs", "0",
    )  # fmt: skip
    assert answer.code == 1
    assert answer.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "  tuning_job.base_model: " in answer.stderr
    assert "  tuning_job.hyperparameters.epoch_count: " in answer.stderr
    assert "Traceback" not in answer.stderr


async def test_usage_errors_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    for args in (
        ("jobs", "lst"),
        ("jobs", "create", "--base-model", BASE_MODEL),  # neither --dataset nor --examples
        ("jobs", "list", "--limit", "0"),
        ("datasets", "upload", str(tmp_path / "missing.jsonl")),
    ):
        answer = await tunectl(env, *args)
        assert answer.code == 2, (args, answer.stderr)
        assert "Usage:" in answer.stderr and "Traceback" not in answer.stderr


async def test_an_unreachable_endpoint_is_said_plainly(env: dict[str, str]) -> None:
    answer = await tunectl({**env, "TUNECTL_ENDPOINT": "127.0.0.1:1"}, "jobs", "list")
    assert answer.code == 1
    assert answer.stderr.startswith("error: cannot reach the API at 127.0.0.1:1: ")
    assert "Traceback" not in answer.stderr


async def test_a_wrong_token_is_the_servers_message(env: dict[str, str]) -> None:
    answer = await tunectl(env, "jobs", "list", "--token", "not-a-token")  # the flag wins
    assert answer.code == 1
    assert answer.stderr.startswith("error: UNAUTHENTICATED: ")


async def test_the_config_file_is_read_below_the_environment(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'endpoint = "{env["TUNECTL_ENDPOINT"]}"\ntoken = "{env["TUNECTL_TOKEN"]}"\n')
    from_file = {**env, "TUNECTL_CONFIG": str(config)}
    del from_file["TUNECTL_ENDPOINT"], from_file["TUNECTL_TOKEN"]
    assert (await tunectl(from_file, "jobs", "list", "--output", "json")).code == 0
    overridden = await tunectl({**from_file, "TUNECTL_TOKEN": "wrong"}, "jobs", "list")
    assert overridden.stderr.startswith("error: UNAUTHENTICATED: ")

    config.write_text('endpoint = "x:1"\ntokn = "typo"\n')
    typo = await tunectl(from_file, "jobs", "list")
    assert typo.code == 2
    assert "unknown settings tokn" in typo.stderr


async def test_a_trained_jobs_events_plot_and_answers(
    api_only: System, env: dict[str, str], tmp_path: Path
) -> None:
    examples = write_jsonl(tmp_path / "examples.jsonl")
    create = ("jobs", "create", "--base-model", BASE_MODEL, "--examples", str(examples))
    job = (await tunectl(env, *create, "--epochs", "3", "--output", "json")).json()
    await api_only.start_worker()
    assert (await api_only.finish_training(job["name"])).state == State.SUCCEEDED

    events = (await tunectl(env, "jobs", "events", job["name"], "--output", "json")).json()
    kinds = [e["kind"] for e in events["events"]]
    assert kinds[0] == "ACCEPTED" and kinds[-1] == "SUCCEEDED", kinds
    assert {"ADMITTED", "SUBMITTED"} <= set(kinds)

    png = tmp_path / "loss.png"
    drawn = await tunectl(env, "jobs", "plot", job["name"], "-o", str(png), "--output", "json")
    plotted = drawn.json()
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert plotted["snapshots"] > 0 and plotted["width_px"] == 1000

    answer = (await tunectl(env, "generate", job["name"], "hello", "--output", "json")).json()
    text = "".join(p["text"] for p in answer["candidates"][0]["content"]["parts"])
    assert text
    streamed = await tunectl(env, "generate", job["name"], "hello", "--stream")
    assert streamed.code == 0 and streamed.stdout.strip(), streamed.stderr
