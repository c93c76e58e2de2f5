"""The DuckDB extensions the lake needs, loaded from their PyPI wheels: nothing downloads.

`duckdb-extension-ducklake` and `duckdb-extension-postgres` (the `driftd[lake]` extra) ship
the extension binaries for this DuckDB release inside site-packages. DuckDB loads an
extension file by path but checks that its file name matches its entry point, and the
postgres wheel names its file `postgres.duckdb_extension` while the extension is
`postgres_scanner`: so both files are linked, under the names DuckDB expects, into a private
directory, and loaded from there. Automatic installing and loading stay off, so a missing
wheel is a clear error, never a download.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

# extension name DuckDB expects -> (the wheel's module, the file inside it)
WHEELS = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake.duckdb_extension"),
    "postgres_scanner": ("duckdb_extension_postgres", "postgres.duckdb_extension"),
}
INSTALL_HINT = "pip install 'driftd[lake]'"
# settings of every connection that attaches a lake: no extension is fetched at run time
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class LakeExtensionMissing(RuntimeError):
    """The lake's DuckDB extensions are not installed (or not for this DuckDB release)."""


@dataclass(frozen=True)
class ExtensionFiles:
    ducklake: Path
    postgres_scanner: Path


def _wheel_file(module: str, name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LakeExtensionMissing(f"{module} is not installed; store.lake needs the DuckDB "
                                   f"ducklake and postgres extensions: {INSTALL_HINT}")
    version = f"v{duckdb.__version__}"
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / version / name
    if not path.is_file():
        raise LakeExtensionMissing(f"{path} is missing: {module} is not the build for DuckDB "
                                   f"{duckdb.__version__}; {INSTALL_HINT}")
    return path


def extension_files(directory: Path | None = None) -> ExtensionFiles:
    """The two extension files, linked under DuckDB's names into `directory` (default: a
    per-user folder in the temp dir). Raises LakeExtensionMissing with the install hint."""
    directory = directory or Path(tempfile.gettempdir()) / (
        f"driftd-extensions-{os.getuid()}" if hasattr(os, "getuid") else "driftd-extensions")
    directory = directory / f"v{duckdb.__version__}"
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (module, file) in WHEELS.items():
        source = _wheel_file(module, file)
        target = directory / f"{name}.duckdb_extension"
        if not (target.is_symlink() and target.resolve() == source.resolve()):
            tmp = directory / f".{name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(source)
            os.replace(tmp, target)  # atomic: processes starting together never see half a link
        out[name] = target
    return ExtensionFiles(**out)


def lake_available() -> bool:
    try:
        for module, file in WHEELS.values():
            _wheel_file(module, file)
    except LakeExtensionMissing:
        return False
    return True


def load_lake_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """LOAD ducklake and postgres_scanner into `con` from the installed wheels."""
    files = extension_files()
    for path in (files.postgres_scanner, files.ducklake):
        con.execute(f"LOAD '{_q(str(path))}'")


def offline_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake extensions loaded and no extension autoloading."""
    con = duckdb.connect(config=dict(OFFLINE))
    load_lake_extensions(con)
    return con


def _q(text: str) -> str:
    return text.replace("'", "''")
