"""Render a run's report.html in headless Chromium and save a full-page screenshot.

    python scripts/screenshot_report.py RUN_DIR [--out report.png] [--width 1100] [--height 3400]

Needs a `chromium` (or `chromium-browser`, `google-chrome`) binary on PATH; it is not a
project dependency (Debian/Ubuntu: `apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def screenshot(html: Path, out: Path, width: int = 1100, height: int = 3400) -> Path:
    browser = find_browser()
    if browser is None:
        raise SystemExit("no chromium binary on PATH (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    page = [f"--window-size={width},{height}", f"--screenshot={out.resolve()}", html.resolve().as_uri()]
    subprocess.run([browser, *flags, *page], check=True, capture_output=True, timeout=120)
    if not out.is_file() or out.stat().st_size == 0:
        raise SystemExit(f"chromium wrote no screenshot to {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: RUN_DIR/report-screenshot.png")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=3400)
    args = parser.parse_args()
    html = args.run_dir / "report.html"
    if not html.is_file():
        sys.exit(f"no report.html in {args.run_dir}")
    out = screenshot(html, args.out or args.run_dir / "report-screenshot.png", args.width, args.height)
    print(f"screenshot: {out}")


if __name__ == "__main__":
    main()
