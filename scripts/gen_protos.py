"""Generate the Python code and type stubs for protos/ into the `tuning` package.

Usage: python scripts/gen_protos.py [--out DIR]

The generated files are committed; tests/test_protos_fresh.py regenerates them into a
temporary directory and fails if the committed copies differ. Never edit them by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def include_dirs() -> list[str]:
    """protoc include paths: our protos, protobuf's well-known types, google.rpc."""
    import google.rpc
    import grpc_tools

    wkt = Path(grpc_tools.__file__).parent / "_proto"
    googleapis = Path(next(iter(google.rpc.__path__))).parent.parent
    return [str(PROTOS), str(wkt), str(googleapis)]


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools) with the mypy-protobuf plugins into `out`."""
    from grpc_tools import protoc

    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = ["protoc", *(f"-I{d}" for d in include_dirs())]
    args += [f"--python_out={out}", f"--grpc_python_out={out}"]
    bindir = Path(sys.executable).parent
    args += [f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}"]
    args += [f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}"]
    args += [f"--mypy_out={out}", f"--mypy_grpc_out={out}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in {Path(s).parent for s in sources}:
        for level in [package, *package.parents][:-1]:
            init = out / level / "__init__.py"
            init.touch()
    (out / "tuning" / "py.typed").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repo)")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
