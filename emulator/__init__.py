"""An emulator of Google's tuning REST surfaces, on one port: the Gemini API's
``tunedModels`` (v1beta), Vertex AI's ``projects.locations.tuningJobs`` (v1 and v1beta1,
with the models and endpoints a job makes) and the Cloud Storage JSON API.

Used by the tests and the offline demo in place of Google. It serves the OAuth token endpoint,
list/get of the base models (``models``, a configurable catalog),
create/get/list/patch/delete of tuned models, their long-running operations (get, list, v1
cancel), ``generateContent`` on ACTIVE models; Vertex tuning jobs (create, get, list, cancel),
models and endpoints (get, delete, undeploy, generateContent); Cloud Storage objects (media,
multipart and resumable uploads, get, download, list, delete); and emulator-only inspection
and fault-injection endpoints under ``/_emulator/``.

Training is simulated: nothing is trained. Steps advance with the injected clock at a
configured rate, losses follow a made-up falling curve, and everything is computed from the
clock at read time, so runs are deterministic under a fake clock.

Emulator decisions where the real service is undocumented or cannot be reproduced (all of
them, with the routes, flags and fault knobs, are listed in ``emulator/README.md``):

- a display name ending in ``[fail]`` makes training stop at half its steps (rounded up) and
  end with operation error 13 and model state FAILED;
- a ``training`` fault rule makes the next created models fail (error 13, FAILED) or stall
  (CREATING for ever) at a given step instead;
- a cancelled operation ends at once with error code 1, training stops at the step reached,
  and the model becomes FAILED; cancelling a finished operation changes nothing;
- models are owned by the OAuth client id whose token created them.

The contract it follows is ``reference/gemini-tuning-api.md``.
"""

from __future__ import annotations

from emulator.app import create_app
from emulator.catalog import DEFAULT_MODELS, BaseModel
from emulator.config import EmulatorConfig, Grant, load_grants
from emulator.faults import FaultRule, load_fault_rules
from emulator.server import running_emulator

__all__ = [
    "DEFAULT_MODELS",
    "BaseModel",
    "EmulatorConfig",
    "FaultRule",
    "Grant",
    "create_app",
    "load_fault_rules",
    "load_grants",
    "running_emulator",
]
