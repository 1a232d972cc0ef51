"""Google's tuning guide ("Fine-tuning with the Gemini API", google-generativeai 0.8.x),
its tutorial as a script, run against the platform.

This script runs in the judge venv, `.venv-judge/` (made by bin/_setup.sh), never in
`.venv`: google-generativeai 0.8.6 pins google-ai-generativelanguage 0.6.15, which needs
protobuf<6, and the project runs protobuf 7. tests/e2e/test_guide_tutorial.py starts a
system serving TLS and runs it as `.venv-judge/bin/python guide_tutorial.py PARAMS`,
PARAMS a JSON object (`endpoint`, `api_key`, `base_model`, `model_id`, `cancel_id`,
`training_data`, `hyperparameters`: create_tuned_model's `epoch_count`, `batch_size`
and `learning_rate` as the tenant's provider takes them, `sampling`: its `temperature`,
`top_p` and `top_k`, the tuned model's defaults, `prompt`), with
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH naming the test CA, so the SDK's default TLS trusts it.

The SDK is used as the guide uses it, unmodified: only `genai.configure` differs (the
platform's endpoint, the platform token as the API key, the gRPC transport). Each step
prints one JSON line on stdout (`{"step": ..., ...}`) with what the SDK returned; the
test asserts on them, and moves the emulator's clock when it reads `waiting` (the guide
waits on real training there). A step that raises prints `{"step": "failed", "at": ...,
"error": ...}` and the script exits 1, so a failure says where the tutorial stopped.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import google.generativeai as genai  # type: ignore[import-untyped, import-not-found, unused-ignore]

WAIT_POLL_S = 0.2
"""The guide sleeps 30 s between wait_bar's statuses; emulated training is quicker."""
CANCEL_WAIT_S = 20.0


class Tutorial:
    """The tutorial's steps in order; `at` names the one running."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.at = "configure"

    def say(self, **values: Any) -> None:
        print(json.dumps({"step": self.at, **values}, default=str), flush=True)

    def step(self, name: str) -> None:
        self.at = name

    def run(self) -> None:
        p = self.params
        genai.configure(
            api_key=p["api_key"],
            transport="grpc",
            client_options={"api_endpoint": p["endpoint"]},
        )
        self.step("base_models")
        base_models = [
            m for m in genai.list_models() if "createTunedModel" in m.supported_generation_methods
        ]
        self.say(names=[m.name for m in base_models])
        name = self.tune()
        self.inspect(name)
        self.call(name)
        self.cancel_second()
        self.delete(name)

    def tune(self) -> str:
        p = self.params
        self.step("create")
        operation = genai.create_tuned_model(
            source_model=p["base_model"],
            training_data=p["training_data"],
            id=p["model_id"],
            **p["hyperparameters"],
            **p["sampling"],
        )
        metadata = operation.metadata
        self.say(
            operation=operation.name,
            tuned_model=metadata.tuned_model,
            total_steps=metadata.total_steps,
        )
        self.step("waiting")
        self.say()
        completed = []
        for status in operation.wait_bar():
            completed.append(status.completed_steps)
            time.sleep(WAIT_POLL_S)
        self.step("result")
        model = operation.result()
        final = operation.metadata
        self.say(
            name=model.name,
            state=model.state.name,
            statuses=len(completed),
            completed_steps=final.completed_steps,
            total_steps=final.total_steps,
        )
        return str(model.name)

    def inspect(self, name: str) -> None:
        self.step("get")
        model = genai.get_tuned_model(name)
        snapshots = model.tuning_task.snapshots
        self.say(
            name=model.name,
            state=model.state.name,
            base_model=model.base_model,
            source_model=model.source_model,
            sampling={"temperature": model.temperature, "top_p": model.top_p, "top_k": model.top_k},
            snapshots=[
                {key: row.get(key) for key in ("step", "epoch", "mean_loss")} for row in snapshots
            ],
        )

    def call(self, name: str) -> None:
        self.step("generate")
        model = genai.GenerativeModel(model_name=name)
        answer = model.generate_content(self.params["prompt"])
        self.say(text=answer.text, finish_reason=answer.candidates[0].finish_reason.name)
        self.step("update")
        updated = genai.update_tuned_model(name, {"description": "counts up by one"})
        self.say(description=updated.description)
        self.step("list")
        self.say(names=[m.name for m in genai.list_tuned_models()])

    def cancel_second(self) -> None:
        p = self.params
        self.step("cancel")
        operation = genai.create_tuned_model(
            source_model=p["base_model"],
            training_data=p["training_data"],
            id=p["cancel_id"],
            **p["hyperparameters"],
        )
        operation.cancel()
        deadline = time.monotonic() + CANCEL_WAIT_S
        while not operation.done() and time.monotonic() < deadline:
            time.sleep(WAIT_POLL_S)
        model = genai.get_tuned_model(f"tunedModels/{p['cancel_id']}")
        self.say(done=operation.done(), cancelled=operation.cancelled(), state=model.state.name)

    def delete(self, name: str) -> None:
        self.step("delete")
        genai.delete_tuned_model(name)
        genai.delete_tuned_model(f"tunedModels/{self.params['cancel_id']}")
        self.say(remaining=[m.name for m in genai.list_tuned_models()])


def main(argv: list[str]) -> int:
    tutorial = Tutorial(json.loads(argv[1]))
    try:
        tutorial.run()
    except Exception as exc:  # reported, then the script fails: the test shows where
        failed_at = tutorial.at
        tutorial.step("failed")
        tutorial.say(at=failed_at, error=f"{type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
