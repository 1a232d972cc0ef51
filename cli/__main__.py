"""`tunectl` (and `python -m cli`): the root command, and the one place failures are printed."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
import grpc

from cli.app import Invocation, global_options
from cli.datasets import datasets
from cli.errors import CliError, ExitCode, from_rpc_error
from cli.generate import generate
from cli.jobs import jobs

EPILOG = """\b
Configuration, first found wins: flags; TUNECTL_ENDPOINT, TUNECTL_TOKEN, TUNECTL_TLS,
TUNECTL_CA_FILE, TUNECTL_CERT_FILE, TUNECTL_KEY_FILE, TUNECTL_TIMEOUT_S; the config
file (--config, TUNECTL_CONFIG, or config.toml in the user config directory).

\b
Exit codes: 0 ok; 1 the call failed (the API's message and field violations are
printed); 2 usage or configuration error; 3 a watched job ended FAILED; 4 a watched
job ended CANCELLED; 130 interrupted.
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
def tunectl() -> None:
    """Fine-tune Gemini models through the tuning platform."""


tunectl.add_command(datasets)
tunectl.add_command(jobs)
tunectl.add_command(generate)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run one command and exit with its code; never a traceback for an expected failure."""
    run = Invocation()
    try:
        tunectl.main(args=argv, prog_name="tunectl", standalone_mode=False, obj=run)
    except click.ClickException as error:  # usage errors: click prints them, exit 2
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:  # --help and the like
        sys.exit(done.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except grpc.RpcError as error:
        _fail(run, from_rpc_error(error, run.endpoint))
    except CliError as error:
        _fail(run, error)
    sys.exit(ExitCode.OK)


def _fail(run: Invocation, error: CliError) -> NoReturn:
    run.output().error(error.lines(), error.to_dict())
    sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
