"""Regenerate the committed Python code for every .proto under proto/.

Run:    python proto/generate.py          (or: make proto)
Check:  python proto/generate.py --check  (exit 1 when the committed code is stale)

Output goes to services/contracts/, importable as ``cctriage.<area>.v1.<name>_pb2``.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
OUT_ROOT = PROTO_ROOT.parent / "services" / "contracts"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"


def _generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{WELL_KNOWN}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Packages need __init__.py so setuptools and mypy see them.
    for folder in [out / "cctriage", *(p for p in (out / "cctriage").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    # grpc_python_out writes an empty *_pb2_grpc.py for protos without services: drop them.
    for stub in out.rglob("*_pb2_grpc.py"):
        if "class " not in stub.read_text():
            stub.unlink()


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        _generate(fresh)
        if args.check:
            new, old = _files(fresh / "cctriage"), _files(OUT_ROOT / "cctriage")
            stale = sorted(
                name
                for name in set(new) | set(old)
                if name not in new or name not in old or not filecmp.cmp(new[name], old[name], shallow=False)
            )
            if stale:
                print("generated code is stale; run `make proto`:", *stale, sep="\n  ", file=sys.stderr)
                return 1
            print("generated code is up to date")
            return 0
        shutil.rmtree(OUT_ROOT / "cctriage", ignore_errors=True)
        shutil.copytree(fresh / "cctriage", OUT_ROOT / "cctriage")
        print(f"generated {len(_files(fresh))} files into {OUT_ROOT.relative_to(PROTO_ROOT.parent)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
