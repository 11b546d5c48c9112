"""Which symbolic links a stage follows: one rule for data prep's videos and the scan's recordings.

A video is named inside a folder: data prep's videos folder (the label file's, or `videos_dir=`), the scan's input
folder, the folder of a file the scan is given. The name itself must stay inside that folder (`../x.mp4` is
refused). A symbolic link met on the way (the file, a folder above it, an image of a frame folder) is followed when
its target is inside that folder or inside one of the `allowed_roots=` folders, and refused otherwise, naming the
link and its target: an archive of links into a footage store works once the store is allowed, and a link to
anywhere else never brings a file into a dataset or a scan unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class PathNotAllowed(ValueError):
    """A video path that leaves its folder, or a link whose target is outside every allowed root."""


@dataclass(frozen=True)
class AllowedRoots:
    """The folder videos are named in (`folder`, called `folder_name` in messages) and the extra `allowed_roots=`
    folders that links from it may point into."""

    folder: Path
    extra: tuple[Path, ...] = ()
    folder_name: str = "the videos folder"

    @classmethod
    def of(cls, folder: str | Path, extra: Iterable[str | Path] = (), folder_name: str = "the videos folder"):
        """`AllowedRoots` from plain paths (the config's strings)."""
        return cls(Path(folder), tuple(Path(p) for p in extra), folder_name)

    def resolved(self) -> list[Path]:
        """Every root with its own links resolved: a videos folder that is itself a link allows its target."""
        return [root.resolve() for root in (self.folder, *self.extra)]

    def holds(self, resolved_path: Path) -> bool:
        """Whether a resolved path lies inside one of the roots."""
        return any(resolved_path.is_relative_to(root) for root in self.resolved())

    def describe(self) -> str:
        """The roots as a message names them."""
        if self.extra:
            return f"{self.folder_name} {self.folder} and allowed_roots ({', '.join(str(p) for p in self.extra)})"
        return f"{self.folder_name} {self.folder}"


def missing_roots(extra: Iterable[str | Path]) -> list[str]:
    """The `allowed_roots=` entries that are not existing folders (a typo would silently allow nothing)."""
    return [str(p) for p in extra if not Path(p).is_dir()]


def resolve_allowed(path: str | Path, roots: AllowedRoots) -> Path:
    """The file `path` names, with every link on the way resolved, when the rule allows it; else `PathNotAllowed`
    saying why: the name leaves the folder, a link points outside every root (naming the link and its target), or
    the links loop. A path that does not exist is returned resolved as far as it goes (its reader says "not found").
    """
    path = Path(path)
    named = Path(os.path.normpath(path.absolute()))
    folder = Path(os.path.normpath(roots.folder.absolute()))
    if not (named.is_relative_to(folder) or named.is_relative_to(roots.folder.resolve())):
        raise PathNotAllowed(f"video path {str(path)!r} escapes {roots.folder_name} {roots.folder}")
    try:
        resolved = path.resolve()
    except RuntimeError:  # Python 3.11 raises it for a loop of links
        raise PathNotAllowed(f"{path}: its symbolic links form a loop") from None
    if roots.holds(resolved):
        return resolved
    link = _first_link_leaving(path, roots)
    if link is not None:
        target = link.resolve()
        shown = os.readlink(link)
        via = f" ({shown})" if str(shown) != str(target) else ""
        allow = "" if roots.extra else "; add its folder to allowed_roots= to follow it"
        raise PathNotAllowed(f"{link} is a link to {target}{via}, outside {roots.describe()}{allow}")
    raise PathNotAllowed(f"{path} resolves to {resolved}, outside {roots.describe()}")


def _first_link_leaving(path: Path, roots: AllowedRoots) -> Path | None:
    """The first link along `path` that sits inside the roots and points outside them (a link above the folder, such
    as a /home that is a link, is not one of the path's choices and is not blamed)."""
    current = Path(path.absolute().anchor)
    for part in path.absolute().parts[1:]:
        current = current / part
        if current.is_symlink() and roots.holds(current.parent.resolve()) and not roots.holds(current.resolve()):
            return current
    return None
