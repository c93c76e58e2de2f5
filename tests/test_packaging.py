"""What `pip install driftd` puts into a user's environment: one import name, no Evidently."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "driftd"  # setuptools writes build/ in-tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
        ".hypothesis", "demo-out", "*.duckdb*"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_NO_INDEX": "1"})
    assert build.returncode == 0, build.stderr
    for line in (build.stdout + build.stderr).splitlines():  # setuptools says nothing
        assert "SetuptoolsDeprecationWarning" not in line and "is not a package" not in line, line
    (path,) = out.glob("driftd-*.whl")
    return path


def test_the_wheel_installs_one_top_level_name(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (top_level,) = [n for n in names if n.endswith("top_level.txt")]
        assert zf.read(top_level).decode().split() == ["driftd"]
    roots = {n.split("/", 1)[0] for n in names if not n.startswith("driftd-")}
    assert roots == {"driftd"}
    for module in ("driftd/monitor/ingest/consumer.py", "driftd/monitor/store/duckdb_file.py",
                   "driftd/monitor/service/app.py", "driftd/monitor/demo/broker.py",
                   "driftd/detectors/ks.py", "driftd/sinks/webhook.py",
                   "driftd/reports/render.py", "driftd/reports/templates/base.html.j2",
                   "driftd/api.py"):
        assert module in names


def test_evidently_is_an_extra_not_a_requirement(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith("METADATA")]
        headers = Parser().parsestr(zf.read(meta).decode())
    requires = headers.get_all("Requires-Dist")
    evidently = [r for r in requires if r.lower().startswith("evidently")]
    assert evidently and all("extra == \"evidently\"" in r for r in evidently)
    assert "evidently" in headers.get_all("Provides-Extra")
    assert headers["License-Expression"] == "Apache-2.0"
    entry = zipfile.ZipFile(wheel).read(
        next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("entry_points.txt")))
    assert b"driftd = driftd.monitor.cli:entry" in entry


def test_the_repository_folders_are_not_importable_as_top_level_names(tmp_path):
    code = ("import importlib.util as u; print([n for n in ('monitor', 'detectors', 'sinks', "
            "'reports') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_python_dash_m_driftd_is_the_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "driftd", "--version"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("driftd "), out.stderr
