"""Load rendered reports in real headless Chromium: they draw, log nothing, fetch nothing.

Console messages come from `--enable-logging=stderr` ("...:CONSOLE..." lines); requests the page
makes come from Chromium's NetLog (`--log-net-log`), keeping only requests with a page initiator
(the browser's own background requests have none). A canary page proves the harness sees both.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from driftd.reports import render_check, render_run
from tests.reports.conftest import WINDOW_END, build_trends

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_SECONDS = 90

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


@dataclass
class BrowserRun:
    stdout: str
    console: list[str]
    requests: list[str]


def _page_requests(netlog: Path) -> list[str]:
    data = json.loads(netlog.read_text(encoding="utf-8", errors="replace"))
    names = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    urls = []
    for event in data["events"]:
        if names.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        params = event.get("params", {})
        if params.get("initiator", "not an origin") == "not an origin":
            continue  # the browser's own traffic (component updates etc.), not the page's
        url = params.get("url", "")
        if not url.startswith(("file:", "data:")):
            urls.append(url)
    return urls


def _chromium(tmp_path: Path, page: Path, *action: str) -> BrowserRun:
    run_dir = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    run_dir.mkdir()
    netlog = run_dir / "netlog.json"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={run_dir / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--log-net-log={netlog}",
        *action,
        page.resolve().as_uri(),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session we started: chromium and its helpers
        proc.communicate()
        pytest.fail(f"chromium did not finish within {TIMEOUT_SECONDS} s")
    stderr = err.decode("utf-8", "replace")
    assert proc.returncode == 0, stderr[-2000:]
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return BrowserRun(out.decode("utf-8", "replace"), console, _page_requests(netlog))


def _decode_png(data: bytes) -> np.ndarray:
    """8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) -> (height, width, channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6), header
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    image = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            cur = (line + prev) & 255
        else:  # average / paeth depend on the reconstructed left neighbour: byte by byte
            out = [0] * (stride + bpp)
            up, filt = prev.tolist(), line.tolist()
            for i in range(stride):
                a, b = out[i], up[i]
                if kind == 3:
                    v = filt[i] + ((a + b) >> 1)
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    v = filt[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))
                out[i + bpp] = v & 255
            cur = np.array(out[bpp:], dtype=np.int64)
        image[y] = cur
        prev = cur
    return image.reshape(height, width, bpp)[:, :, :3]


def _pixels_near(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 24) -> int:
    return int((np.abs(image.astype(int) - np.array(rgb)).max(axis=2) <= tolerance).sum())


def _assert_real_page(image: np.ndarray) -> None:
    height, width, _ = image.shape
    assert (width, height) == (1280, 2000)
    background = np.array([245, 247, 250])
    ink = image.astype(int)
    paper = (np.abs(ink - background).max(axis=2) <= 12) | (ink.min(axis=2) >= 250)
    drawn = 1 - paper.mean()
    packed = (ink[:, :, 0] << 16) | (ink[:, :, 1] << 8) | ink[:, :, 2]
    colours = len(np.unique(packed))
    assert drawn > 0.03, f"only {drawn:.1%} of the page is neither background nor white"
    assert colours > 200, f"only {colours} distinct colours"


@pytest.fixture
def report_file(tmp_path, full_result, lineage) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_run(lineage, full_result, trends=build_trends(full_result)), "utf-8")
    return path


def test_report_draws_in_chromium_without_console_messages_or_requests(tmp_path, report_file):
    png = tmp_path / "report.png"
    run = _chromium(tmp_path, report_file, f"--screenshot={png}", "--window-size=1280,2000")
    assert run.console == []
    assert run.requests == []
    image = _decode_png(png.read_bytes())
    _assert_real_page(image)
    assert _pixels_near(image, (201, 42, 42)) > 200  # the red drift verdict
    assert _pixels_near(image, (47, 111, 221)) > 2000  # current-window bars in the charts
    assert _pixels_near(image, (163, 173, 184)) > 2000  # reference bars


def test_inline_script_runs_under_the_content_security_policy(tmp_path, report_file):
    run = _chromium(tmp_path, report_file, "--dump-dom")
    assert run.console == []  # a CSP refusal would be logged here
    assert '<html lang="en" class="js">' in run.stdout
    assert 'aria-sort="none"' in run.stdout
    assert run.stdout.count("<tr") >= 12


def test_report_reads_the_same_without_javascript(tmp_path, report_file):
    # Chromium's headless screenshot needs scripting itself, so the page's only script is
    # removed instead of disabling JavaScript.
    html = report_file.read_text("utf-8")
    assert html.count("<script>") == 1
    page = tmp_path / "nojs.html"
    page.write_text(re.sub(r"<script>.*?</script>", "", html, flags=re.S), "utf-8")
    png = tmp_path / "nojs.png"
    run = _chromium(tmp_path, page, f"--screenshot={png}", "--window-size=1280,2000")
    assert run.console == [] and run.requests == []
    _assert_real_page(_decode_png(png.read_bytes()))
    dom = _chromium(tmp_path, page, "--dump-dom").stdout
    assert 'class="js"' not in dom
    assert dom.count('<tr class="') >= 12  # the findings are static markup


def test_check_report_prints_to_a_multi_page_pdf(tmp_path, full_result):
    page = tmp_path / "check.html"
    page.write_text(
        render_check(
            full_result,
            reference_name="ref.parquet",
            current_name="cur.csv",
            generated_at=WINDOW_END,
        ),
        "utf-8",
    )
    pdf = tmp_path / "check.pdf"
    run = _chromium(tmp_path, page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert run.console == [] and run.requests == []
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = data.count(b"/Type /Page") - data.count(b"/Type /Pages")
    assert pages >= 2, f"{pages} page(s)"


def test_harness_sees_console_messages_and_page_requests(tmp_path):
    """Canary: without these, the empty lists above would prove nothing."""
    page = tmp_path / "canary.html"
    page.write_text(
        "<!DOCTYPE html><title>canary</title>"
        '<img src="http://127.0.0.1:9/canary.png">'
        '<script>console.error("canary-console")</script>',
        "utf-8",
    )
    run = _chromium(tmp_path, page, "--dump-dom")
    assert any("canary-console" in line for line in run.console)
    assert "http://127.0.0.1:9/canary.png" in run.requests
