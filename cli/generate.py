"""`tunectl generate MODEL PROMPT`: call a tuned model (GenerationService)."""

from __future__ import annotations

import click

from cli.app import global_options, invocation
from cli.output import proto_dict
from tuning.v1 import generation_service_pb2

MAX_PROMPT_CHARS = 1_000_000
"""The API's message limit is 1 MiB; a longer prompt cannot fit."""


@click.command()
@click.argument("model")
@click.argument("prompt")
@click.option("--stream", is_flag=True, help="Print the answer as it is generated.")
@click.option("--temperature", type=click.FloatRange(0.0, 2.0))
@click.option("--max-output-tokens", type=click.IntRange(1, 65536))
@click.option("--system-instruction", default="")
@global_options
def generate(
    model: str,
    prompt: str,
    *,
    stream: bool,
    temperature: float | None,
    max_output_tokens: int | None,
    system_instruction: str,
) -> None:
    """Ask MODEL (tuningJobs/ID, a checkpoint, or aliases/NAME) to answer PROMPT."""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise click.BadParameter(f"at most {MAX_PROMPT_CHARS} characters", param_hint="PROMPT")
    request = generation_service_pb2.GenerateContentRequest(
        model=model,
        contents=[_user_turn(prompt)],
        generation_config=generation_service_pb2.GenerationConfig(
            temperature=temperature, max_output_tokens=max_output_tokens
        ),
    )
    if system_instruction:
        request.system_instruction.parts.add(text=system_instruction)
    if stream:
        _stream(request)
    else:
        _unary(request)


def _user_turn(prompt: str) -> generation_service_pb2.Content:
    return generation_service_pb2.Content(
        role="user", parts=[generation_service_pb2.Part(text=prompt)]
    )


def _unary(request: generation_service_pb2.GenerateContentRequest) -> None:
    run = invocation()
    client = run.client()
    answer = client.call(client.generation.GenerateContent, request)
    run.output().emit(proto_dict(answer), _text_of(answer) or "(no text)")


def _stream(request: generation_service_pb2.GenerateContentRequest) -> None:
    run = invocation()
    client = run.client()
    out = run.output()
    chunks = client.call(client.generation.StreamGenerateContent, request)
    for chunk in chunks:
        if out.is_json:
            out.json_line(proto_dict(chunk))
        else:
            out.console.file.write(_text_of(chunk))
            out.console.file.flush()
    if not out.is_json:
        out.console.file.write("\n")


def _text_of(answer: generation_service_pb2.GenerateContentResponse) -> str:
    """The first candidate's text (what a person asked for)."""
    if not answer.candidates:
        return ""
    return "".join(part.text for part in answer.candidates[0].content.parts)
