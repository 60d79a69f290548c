"""python-escpos's printer database, parsed once per machine instead of once per process.

python-escpos 3.1 parses `capabilities.json` with the pure-Python YAML parser whenever it is imported (~0.45 s
of CPU, on the kiosk's start-up path) and writes a pickle of the result into a fresh temporary directory that it
never reads again. It reads a pickle instead when
``ESCPOS_CAPABILITIES_PICKLE_DIR`` names a directory holding one that is newer than the database; this module
gives it the kiosk user's own cache directory (mode 0700, the same trust as the user's installed packages), so
every start after the first reads the pickle (~10 ms).

The cached pickle is only ever put in place whole: python-escpos writes it into a private scratch directory
and it is renamed into the cache, so processes starting together (the kiosk, ``kiosk diag``, tests) never read
a half-written file. A cache that cannot be used costs the parse, never the printer: an unwritable home just
parses again next time, and a damaged pickle is removed and the database parsed afresh. A site that sets
``ESCPOS_CAPABILITIES_PICKLE_DIR`` itself keeps python-escpos's own behaviour.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

PICKLE_DIR_ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"
DATABASE_ENV = "ESCPOS_CAPABILITIES_FILE"
T = TypeVar("T")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hospital-kiosk" / "escpos"


def pickle_name() -> str:
    """The file name python-escpos looks for in the pickle directory."""
    return f"{platform.python_version()}.capabilities.pickle"


def database() -> Path | None:
    """The capabilities file python-escpos will parse, or None when it cannot be found (python-escpos then
    reports that itself)."""
    explicit = os.environ.get(DATABASE_ENV)
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("escpos")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "capabilities.json"


def _fresh(cached: Path) -> bool:
    """As python-escpos decides: the pickle is used unless the database is newer."""
    source = database()
    try:
        return source is not None and cached.stat().st_mtime >= source.stat().st_mtime
    except OSError:
        return False


def import_with_cache(load: Callable[[], T]) -> T:
    """Run `load` (the import of python-escpos) with the printer database read from, or saved into, the
    cache. Call it once per process from one thread at a time: it sets an environment variable meanwhile."""
    if PICKLE_DIR_ENV in os.environ:
        return load()
    cache = cache_dir()
    cached = cache / pickle_name()
    if _fresh(cached):
        os.environ[PICKLE_DIR_ENV] = str(cache)
        try:
            return load()
        except Exception as exc:  # a damaged pickle (disk full when it was written, a different build)
            # The import system has already dropped the modules that failed, so the next import runs them again.
            log.warning("cached receipt-printer database unusable (%s); parsing it again", exc)
            cached.unlink(missing_ok=True)
        finally:
            del os.environ[PICKLE_DIR_ENV]
    scratch = Path(tempfile.mkdtemp(prefix="escpos-"))
    os.environ[PICKLE_DIR_ENV] = str(scratch)
    try:
        result = load()
        try:
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.replace(scratch / pickle_name(), cached)
        except OSError as exc:
            log.info("receipt-printer database not cached (%s); it is parsed again next start", exc)
        return result
    finally:
        del os.environ[PICKLE_DIR_ENV]
        shutil.rmtree(scratch, ignore_errors=True)
