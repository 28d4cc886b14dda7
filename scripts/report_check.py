"""`make report-check`: train a tiny run, write its HTML report, render it in headless Chromium and check that
every figure is drawn.

For each <img> of the report the page's own layout (bounding boxes measured by Chromium) locates the figure in
a full-page screenshot; the region must not be blank and must show the embedded PNG (mean absolute pixel
difference below a tolerance). Exit status 0 when every figure passes, 1 otherwise, 2 when Chromium is missing.

    python scripts/report_check.py                      # tiny synthetic run in a temporary folder
    python scripts/report_check.py --run-dir lightning_logs/version_0 --keep shots/   # an existing run
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH = 1280
MIN_INK = 0.02  # share of non-white pixels a drawn figure has at least (axes, ticks, curves)
MAX_DIFF = 8.0  # mean absolute difference (0-255) between the rendered region and the embedded PNG
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# appended to a copy of the page: writes the layout of the figures into the DOM that --dump-dom prints
LAYOUT_SCRIPT = """<script>
window.addEventListener("load", () => {
  const boxes = [...document.querySelectorAll("img.figure")].map(img => {
    const r = img.getBoundingClientRect();
    return {alt: img.alt, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height, ok: img.complete
            && img.naturalWidth > 0};
  });
  const out = document.createElement("pre");
  out.id = "layout";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, boxes: boxes});
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    candidates = [os.environ.get("CHROMIUM", ""), *BROWSERS]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def chromium(browser: str, *args: str) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


def measure_layout(browser: str, page: Path) -> dict:
    """Figure boxes and page height as Chromium lays out ``page`` at ``WIDTH`` pixels."""
    probe = page.with_name(page.stem + ".layout.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", LAYOUT_SCRIPT + "</body>"), encoding="utf-8")
    dom = chromium(browser, "--virtual-time-budget=10000", f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri())
    probe.unlink()
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError("the page's layout script did not run (no #layout in the dumped DOM)")
    return json.loads(html.unescape(found.group(1)))


def embedded_pngs(page: Path) -> dict[str, np.ndarray | None]:
    """The report's images as RGB arrays (``None`` where Python cannot decode one either), by their alt text."""
    images = {}
    pattern = r'<img class="figure" alt="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"'
    for alt, data in re.findall(pattern, page.read_text()):
        try:
            image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
            images[alt] = np.asarray(image, dtype=np.float64)
        except (OSError, ValueError):
            images[alt] = None
    return images


def check_figures(screenshot: np.ndarray, layout: dict, pngs: dict[str, np.ndarray]) -> list[str]:
    """One line per figure: ``ok`` or what is wrong."""
    lines = []
    for box in layout["boxes"]:
        x, y, w, h = (int(round(box[k])) for k in ("x", "y", "w", "h"))
        region = screenshot[y : y + h, x : x + w]
        problems = []
        if not box["ok"] or w == 0 or h == 0:
            problems.append("image not decoded")
        elif region.shape[:2] != (h, w):
            problems.append(f"outside the screenshot ({region.shape[:2]} of {(h, w)})")
        else:
            ink = float((region.min(axis=2) < 245).mean())
            if ink < MIN_INK:
                problems.append(f"blank ({ink:.1%} non-white pixels)")
            expected = pngs.get(box["alt"])
            if expected is not None and expected.shape == region.shape:
                diff = float(np.abs(region - expected).mean())
                if diff > MAX_DIFF:
                    problems.append(f"differs from the embedded PNG (mean |diff| {diff:.1f})")
        status = "ok" if not problems else "FAIL: " + "; ".join(problems)
        lines.append(f"{box['alt']:<24} {w}x{h} at ({x}, {y})  {status}")
    return lines


def tiny_run(folder: Path) -> Path:
    """Train 4 epochs on a synthetic two-class table with calibration; return the run directory."""
    from tabularnet.cli import main

    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=(n, 3))
    color = rng.choice(["red", "green", "blue"], n)
    score = x[:, 0] + 0.5 * x[:, 1] + (color == "red") + rng.normal(0, 0.7, n)
    import pandas as pd

    table = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "color": color, "target": score > 0.3})
    table.iloc[:450].to_csv(folder / "train.csv", index=False)
    table.iloc[450:].to_csv(folder / "test.csv", index=False)
    main(
        [
            "fit",
            "--model=tabularnet.MLPLightningModule",
            "--model.hidden_dims=[32, 32]",
            "--model.calibrate=true",
            f"--data.train_path={folder / 'train.csv'}",
            f"--data.test_path={folder / 'test.csv'}",
            "--data.batch_size=32",
            "--trainer.max_epochs=4",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={folder}",
            "--seed_everything=0",
        ]
    )
    return folder / "lightning_logs" / "version_0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="check the report of this run instead of training a tiny one")
    parser.add_argument("--keep", help="copy the report and the screenshot into this folder")
    options = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("report-check: no chromium found (apt-get install chromium, or set $CHROMIUM)", file=sys.stderr)
        return 2
    from tabularnet.reporting.report import write_report

    with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
        folder = Path(tmp)
        run_dir = Path(options.run_dir) if options.run_dir else tiny_run(folder)
        page = write_report(run_dir, folder / "report.html")
        layout = measure_layout(browser, page)
        shot = folder / "screenshot.png"
        chromium(browser, f"--window-size={WIDTH},{layout['height']}", f"--screenshot={shot}", page.as_uri())
        screenshot = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
        lines = check_figures(screenshot, layout, embedded_pngs(page))
        if options.keep:
            Path(options.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(page, Path(options.keep) / "report.html")
            shutil.copy(shot, Path(options.keep) / "screenshot.png")
    print(f"report-check: {len(lines)} figures in {page.name}, rendered by {Path(browser).name}")
    print("\n".join(lines))
    failed = not lines or any("FAIL" in line for line in lines)
    print("report-check: " + ("FAILED" if failed else "all figures rendered"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
