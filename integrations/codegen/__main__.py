"""``python -m integrations.codegen [--check] [--root DIR]``: regenerate the integrations'
generated files from ``DIR/schemas/openapi.json`` (``--check``: change nothing, exit 1 and
name the files that would change)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from integrations.codegen import generate, stale, write
from integrations.codegen.openapi import load

#: The repository this package sits in.
REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integrations.codegen", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file would change"
    )
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)"
    )
    args = parser.parse_args(argv)
    files = generate(load(args.root))
    if args.check:
        changed = stale(args.root, files)
        for path in changed:
            print(f"would change: {path}")
        if changed:
            print("run `python -m integrations.codegen` and commit the result", file=sys.stderr)
        return 1 if changed else 0
    for path in write(args.root, files):
        print(f"wrote: {path}" if path in files else f"removed: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
