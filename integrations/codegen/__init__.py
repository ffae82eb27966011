"""Generate the contract-driven parts of the n8n node and the Zapier app from
``schemas/openapi.json``.

``generate(document)`` maps every generated file (a repository-relative path) to its
exact text; ``write`` puts them under a root and removes stale files from the generated
directories, which the generator owns; ``stale`` lists what ``write`` would change.
Credentials, the wait-for-webhook logic and triggers are hand-written beside these files.
Output is deterministic: no timestamps, stable ordering, so the tests can compare bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from integrations.codegen import n8n, zapier

#: Directories whose every file the generator writes.
GENERATED_DIRS = (n8n.DIRECTORY, zapier.DIRECTORY)


def generate(document: dict[str, Any]) -> dict[str, str]:
    """Repository-relative path -> text of every generated file."""
    return dict(sorted({**n8n.files(document), **zapier.files(document)}.items()))


def stale(root: Path, files: dict[str, str]) -> list[str]:
    """The paths under ``root`` that differ from ``files``: changed, missing, or present in
    a generated directory without being generated."""
    changed = [
        path
        for path, text in files.items()
        if not (root / path).is_file() or (root / path).read_bytes() != text.encode()
    ]
    return sorted(changed + [path for path in _existing(root) if path not in files])


def write(root: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` under ``root``, delete what the generated directories no longer
    hold, and return the paths that changed."""
    changed = stale(root, files)
    for path in changed:
        target = root / path
        if path not in files:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[path].encode())
    return changed


def _existing(root: Path) -> list[str]:
    return [
        path.relative_to(root).as_posix()
        for directory in GENERATED_DIRS
        if (root / directory).is_dir()
        for path in sorted((root / directory).rglob("*"))
        if path.is_file()
    ]
