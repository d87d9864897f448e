"""Physics callbacks compiled against the installed MuJoCo's headers, loaded through ctypes.

Why compiled at first use rather than shipped: a callback reads mjModel / mjData fields by their C layout,
which belongs to one MuJoCo release; the MuJoCo wheel ships its headers, so building against the installed
release (a 0.2 s ``cc`` call, cached per MuJoCo version and source hash) can never disagree with it. Where
no C compiler exists, :func:`rate_controller_callback` returns None and the batched core falls back to the
numpy reference controller, stepping one substep at a time (slower, same results).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import mujoco

SOURCE = Path(__file__).with_name("ratectl.c")
USERDATA_SIZE = 11  # TETHER_USERDATA in ratectl.c
NUMERIC_NAME = "tether_ratectl"


def _cache_dir() -> Path:
    root = os.environ.get("TETHER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tether")
    return Path(root) / "native"


def _build(source: Path) -> Path | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    include = Path(mujoco.__file__).parent / "include"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    out = _cache_dir() / f"{source.stem}-mujoco{mujoco.__version__}-{digest}.so"
    if out.exists():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_out = Path(tmp) / out.name
            subprocess.run([cc, "-O2", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(tmp_out)],
                           check=True, capture_output=True, timeout=120)
            os.replace(tmp_out, out)  # atomic: parallel test workers never load a half-written library
    except (OSError, subprocess.SubprocessError):
        return None
    return out


@cache
def rate_controller_callback() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """The compiled rate controller as a ctypes function, or None if it cannot be built here."""
    if os.environ.get("TETHER_NO_NATIVE"):
        return None
    lib_path = _build(SOURCE)
    if lib_path is None:
        return None
    lib = ctypes.CDLL(str(lib_path))
    fn = lib.tether_ratectl
    fn.restype, fn.argtypes = None, [ctypes.c_void_p, ctypes.c_void_p]
    return fn


def install_rate_controller() -> bool:
    """Install the rate controller as MuJoCo's (process-global) control callback; False if unavailable.

    The callback acts only on models tagged with the ``tether_ratectl`` numeric, so installing it never
    changes any other simulation. A different callback already installed by someone else is left alone.
    """
    fn = rate_controller_callback()
    if fn is None:
        return False
    current = mujoco.get_mjcb_control()
    if current is None:
        mujoco.set_mjcb_control(fn)
        return True
    return ctypes.cast(current, ctypes.c_void_p).value == ctypes.cast(fn, ctypes.c_void_p).value
