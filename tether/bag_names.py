"""How a rosbag2 bag is named on disk, as ``ros2 bag record -o NAME -s mcap`` names it: the directory ``NAME``
holding ``NAME_0.mcap``, whether the user typed ``NAME`` or ``NAME.mcap``.

Why here, at the top of the package: the recorder (ros) writes bags, the readers (data's bag import,
calibration's system identification) and the CLI's argument check must all find them by the name the user gave
``--record``; one rule for all of them, below every subpackage that uses it.
"""

from __future__ import annotations

from pathlib import Path


def bag_directory(path: str | Path) -> Path:
    """The bag directory ``ros2 bag record -o NAME`` makes for ``NAME`` or ``NAME.mcap``: ``NAME``."""
    p = Path(path)
    return p.with_suffix("") if p.suffix == ".mcap" else p


def resolve_bag(path: str | Path) -> Path:
    """An existing bag for a path as a user gave it to ``--record``: ``out.mcap`` finds the directory ``out``."""
    p = Path(path)
    if not p.exists() and bag_directory(p).is_dir():
        return bag_directory(p)
    return p


def is_bag(path: Path) -> bool:
    """A rosbag2 bag: a directory with ``metadata.yaml``, or one ``.mcap`` / ``.db3`` file."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or (
        path.is_file() and path.suffix.lower() in (".mcap", ".db3"))
