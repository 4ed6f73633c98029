"""Replacing a directory that readers may be using, in one atomic step.

rename(2) cannot replace a non-empty directory, so "delete the old, rename the new" (or
"rename the old aside, rename the new in") leaves a moment with no directory at all; a kill in
that moment leaves none for good. Instead `final` is a symbolic link to a sibling
`.<name>@<token>` directory, and replacing a link is one rename. A kill at any step leaves
`final` whole (old or new); the next replacement removes what the killed one left behind.
The directory just replaced is kept until the replacement after, so a reader that resolved
`final` a moment before the swap (Spark listing a dataset's files) can finish.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from jobs.ingest.lake import fsync_dir


def replace_dir(tmp: Path, final: Path) -> Path:
    """Make the complete directory `tmp` the contents of `final` atomically; returns `final`."""
    tmp, final = Path(tmp), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    target = final.parent / f".{final.name}@{uuid.uuid4().hex[:12]}"
    os.rename(tmp, target)
    link = target.with_name(target.name + ".link")
    os.symlink(target.name, link)  # relative, so the tree can be moved or mounted elsewhere
    previous = os.readlink(final) if final.is_symlink() else None
    if final.exists() and not final.is_symlink():
        previous = f".{final.name}@plain"  # laid out before links: moved aside once
        os.rename(final, final.parent / previous)
    os.replace(link, final)
    fsync_dir(final.parent)
    remove_leftovers(final, keep=previous)
    return final


def remove_leftovers(final: Path, keep: str | None = None) -> list[Path]:
    """Delete the `.<name>@…` siblings other than `final`'s target and `keep`; what was removed."""
    current = os.readlink(final) if final.is_symlink() else None
    removed = []
    for path in final.parent.glob(f".{final.name}@*"):
        if path.name in (current, keep):
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
        removed.append(path)
    return removed


def remove_dir(final: Path) -> bool:
    """Remove `final` (a `replace_dir` link or a plain directory) so that readers see it whole
    or not at all; True when there was something to remove.

    The name goes in one step (unlink the link, or rename a plain directory to a `.<name>@…`
    sibling), then the bytes. A kill in between leaves only `.<name>@…` siblings, which the
    next call (or the next `replace_dir` of that name) deletes.
    """
    final = Path(final)
    existed = final.is_symlink() or final.exists()
    if final.is_symlink():
        final.unlink()
    elif final.exists():
        os.rename(final, final.parent / f".{final.name}@removed-{uuid.uuid4().hex[:12]}")
    if existed:
        fsync_dir(final.parent)
    leftovers = remove_leftovers(final) if final.parent.exists() else []
    return existed or bool(leftovers)
