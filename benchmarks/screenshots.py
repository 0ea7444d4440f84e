"""Regenerate docs/report.png from the current report (`make screenshots`, after `make bench`).

    python benchmarks/screenshots.py [--model build/model] [--dataset build/crossroad]

Scores the crossroad test split with the fitted model, writes the HTML report, and takes a
headless-Chromium screenshot of its top. The PNG records the report's section titles and the
library version (PNG text chunks): `tests/test_docs.py` fails when the current report has other
sections than the screenshot shows, so the picture in README cannot go stale silently.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DOCS = Path(__file__).resolve().parents[1] / "docs"


def section_titles(html: str) -> list[str]:
    """The report's ``<h2>`` titles without their counts (what a screenshot has to match)."""
    import re
    return [re.sub(r"\s*\(?\d[\d,]*\)?", "", t).strip() for t in re.findall(r"<h2>(.*?)</h2>", html)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="build/model")
    ap.add_argument("--dataset", default="build/crossroad")
    a = ap.parse_args()
    from PIL import Image, PngImagePlugin

    from hybrid_drift import HybridDetector, __version__
    from hybrid_drift.datasets import read_manifest
    from hybrid_drift.report import score_report
    det = HybridDetector.load(a.model)
    ds = read_manifest(a.dataset)
    m = ds.manifest[ds.manifest["split"] == "test"]
    table = det.score(m["abspath"].tolist())
    with tempfile.TemporaryDirectory() as tmp:
        page = score_report(table, det, Path(tmp) / "report.html", labels=m["label"].to_numpy(),
                            kinds=m["kind"].tolist())
        shot = Path(tmp) / "shot.png"
        exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={Path(tmp) / 'profile'}", "--window-size=1200,1500",
                        f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
        info = PngImagePlugin.PngInfo()
        info.add_text("hybrid_drift-version", __version__)
        info.add_text("hybrid_drift-sections", "|".join(section_titles(page.read_text())))
        Image.open(shot).save(DOCS / "report.png", pnginfo=info, optimize=True)
    print(f"wrote {DOCS / 'report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
