"""`tunectl jobs ...`: create (or validate), list, get, events, cancel, delete, retune;
`watch` and `plot` live in their own modules and are added here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cli.app import global_options, invocation, resource_name
from cli.examples import read_examples
from cli.output import job_details, jobs_table, proto_dict, when
from cli.plot import plot
from cli.watch import watch
from tuning.v1 import tuning_job_pb2, tuning_service_pb2

MAX_LIST = 1000
MAX_EVENTS = 5000
STATES = [name for name, number in tuning_job_pb2.TuningJob.State.items() if number]
Event = tuning_service_pb2.TuningJobEvent


@click.group()
@global_options
def jobs() -> None:
    """Create, follow and manage tuning jobs."""


jobs.add_command(watch)
jobs.add_command(plot)


def _labels(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, label = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        labels[key] = label
    return labels


@jobs.command()
@click.option("--base-model", required=True, help="e.g. models/gemini-1.5-flash-001-tuning.")
@click.option("--dataset", default="", help="An uploaded dataset (datasets/ID) to tune on.")
@click.option(
    "--examples",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Or a file of examples (JSONL, JSON or CSV with text_input and output), sent inline.",
)
@click.option("--display-name", default="")
@click.option("--description", default="")
@click.option("--epoch-count", "--epochs", type=int, help="Passes over the data (1-1000).")
@click.option("--batch-size", type=int, help="Examples per step (Gemini API).")
@click.option("--learning-rate", type=float, help="Absolute rate (Gemini API).")
@click.option("--learning-rate-multiplier", type=float, help="On the default rate.")
@click.option("--adapter-size", type=int, help="LoRA adapter size: 1, 2, 4, 8, 16 (Vertex AI).")
@click.option("--validation-dataset", default="", help="datasets/ID to evaluate on (Vertex AI).")
@click.option("--system-instruction", default="", help="(Vertex AI.)")
@click.option("--prompt-template", default="", help="Text with {input} once.")
@click.option("--export-last-checkpoint-only", is_flag=True, help="(Vertex AI.)")
@click.option("--label", "labels", multiple=True, callback=_labels, help="KEY=VALUE; repeatable.")
@click.option("--request-id", default="", help="Idempotency key (default: a new UUID).")
@click.option(
    "--validate", is_flag=True, help="Check only: print the step estimate, create nothing."
)
@global_options
def create(**options: Any) -> None:
    """Create a tuning job on --dataset or --examples, with a flag per hyperparameter."""
    if bool(options["dataset"]) == bool(options["examples"]):
        raise click.UsageError("give exactly one of --dataset and --examples")
    if options["learning_rate"] is not None and options["learning_rate_multiplier"] is not None:
        raise click.UsageError("give at most one of --learning-rate and --learning-rate-multiplier")
    request = tuning_service_pb2.CreateTuningJobRequest(
        request_id=options["request_id"] or str(uuid.uuid4()),
        tuning_job=_job_of(options),
        validate_only=options["validate"],
    )
    run = invocation()
    client = run.client()
    job = client.call(client.tuning.CreateTuningJob, request)
    if options["validate"]:
        steps = job.progress.total_steps
        text = f"valid: {steps} training steps estimated; nothing was created"
        run.output().emit(
            {"valid": True, "total_steps": steps, "tuning_job": proto_dict(job)}, text
        )
        return
    run.output().emit(proto_dict(job), job_details(job))


def _job_of(options: dict[str, Any]) -> tuning_job_pb2.TuningJob:
    job = tuning_job_pb2.TuningJob(
        base_model=options["base_model"],
        display_name=options["display_name"],
        description=options["description"],
        validation_dataset=options["validation_dataset"]
        and resource_name("datasets", options["validation_dataset"]),
        system_instruction=options["system_instruction"],
        prompt_template=options["prompt_template"],
        export_last_checkpoint_only=options["export_last_checkpoint_only"],
        labels=options["labels"],
        hyperparameters=_hyperparameters(options),
    )
    if options["dataset"]:
        job.dataset = resource_name("datasets", options["dataset"])
    else:
        job.training_examples.extend(read_examples(options["examples"]))
    return job


def _hyperparameters(options: dict[str, Any]) -> tuning_job_pb2.Hyperparameters:
    """Only the flags given: an unset field takes the upstream's default."""
    names = ("epoch_count", "batch_size", "learning_rate", "learning_rate_multiplier")
    given = {name: options[name] for name in (*names, "adapter_size") if options[name] is not None}
    return tuning_job_pb2.Hyperparameters(**given)


def _filter(states: Iterable[str], labels: dict[str, str], raw: str) -> str:
    """The AIP-160 subset ListTuningJobs reads (service/listing.py), terms joined by AND."""
    terms = [raw] if raw else []
    chosen = sorted(set(states))
    if chosen:
        terms.append(f"state = ({' OR '.join(chosen)})")
    terms += [f'labels.{key} = "{value}"' for key, value in sorted(labels.items())]
    return " AND ".join(terms)


@jobs.command("list")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(STATES), help="Repeatable (OR)."
)
@click.option("--label", "labels", multiple=True, callback=_labels, help="KEY=VALUE; repeatable.")
@click.option("--filter", "raw_filter", default="", help="e.g. base_model_retiring = true.")
@click.option("--limit", type=click.IntRange(1, MAX_LIST), default=50, show_default=True)
@global_options
def list_jobs(states: tuple[str, ...], labels: dict[str, str], raw_filter: str, limit: int) -> None:
    """List the tenant's jobs, newest first."""
    run = invocation()
    client = run.client()
    query = _filter(states, labels, raw_filter)
    found, token = client.collect(
        client.tuning.ListTuningJobs,
        lambda token, room: tuning_service_pb2.ListTuningJobsRequest(
            page_size=room, page_token=token, filter=query
        ),
        lambda page: page.tuning_jobs,
        limit,
    )
    data = {"tuning_jobs": [proto_dict(job) for job in found], "next_page_token": token}
    run.output().emit(data, jobs_table(found))


@jobs.command()
@click.argument("name")
@global_options
def get(name: str) -> None:
    """Show job NAME (tuningJobs/ID or ID)."""
    run = invocation()
    client = run.client()
    request = tuning_service_pb2.GetTuningJobRequest(name=resource_name("tuningJobs", name))
    job = client.call(client.tuning.GetTuningJob, request)
    run.output().emit(proto_dict(job), job_details(job))


@jobs.command()
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, MAX_EVENTS), default=500, show_default=True)
@global_options
def events(name: str, limit: int) -> None:
    """What happened to job NAME, oldest first."""
    run = invocation()
    client = run.client()
    found, token = client.collect(
        client.tuning.ListTuningJobEvents,
        lambda token, room: tuning_service_pb2.ListTuningJobEventsRequest(
            name=resource_name("tuningJobs", name), page_size=min(500, room), page_token=token
        ),
        lambda page: page.events,
        limit,
    )
    data = {"events": [proto_dict(event) for event in found], "next_page_token": token}
    run.output().emit(data, _events_table(found))


def _events_table(found: list[tuning_service_pb2.TuningJobEvent]) -> Table:
    table = Table("TIME", "LEVEL", "KIND", "MESSAGE")
    for event in found:
        table.add_row(
            when(event.time),
            Event.Level.Name(event.level),
            Event.Kind.Name(event.kind),
            escape(event.message),
        )
    return table


@jobs.command()
@click.argument("name")
@global_options
def cancel(name: str) -> None:
    """Cancel job NAME (QUEUED at once; RUNNING through CANCELLING)."""
    run = invocation()
    client = run.client()
    request = tuning_service_pb2.CancelTuningJobRequest(name=resource_name("tuningJobs", name))
    job = client.call(client.tuning.CancelTuningJob, request)
    run.output().emit(proto_dict(job), job_details(job))


@jobs.command()
@click.argument("name")
@global_options
def delete(name: str) -> None:
    """Delete job NAME and its tuned model."""
    run = invocation()
    client = run.client()
    full = resource_name("tuningJobs", name)
    request = tuning_service_pb2.DeleteTuningJobRequest(name=full)
    client.call(client.tuning.DeleteTuningJob, request)
    run.output().emit({"deleted": full}, f"deleted {full}")


@jobs.command()
@click.argument("name")
@click.option("--base-model", required=True, help="The new job's base model.")
@click.option("--display-name", default="")
@click.option("--request-id", default="", help="Idempotency key (default: a new UUID).")
@click.option("--validate", is_flag=True, help="Check only, create nothing.")
@global_options
def retune(name: str, base_model: str, display_name: str, request_id: str, validate: bool) -> None:
    """Re-run job NAME's recipe on another base model."""
    run = invocation()
    client = run.client()
    request = tuning_service_pb2.RetuneTuningJobRequest(
        name=resource_name("tuningJobs", name),
        base_model=base_model,
        display_name=display_name,
        request_id=request_id or str(uuid.uuid4()),
        validate_only=validate,
    )
    job = client.call(client.tuning.RetuneTuningJob, request)
    run.output().emit(proto_dict(job), job_details(job))
