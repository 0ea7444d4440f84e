"""The pictures in the docs show the current report: docs/report.png records the report's section titles
when `make screenshots` takes it; a report made now must have the same sections, or the picture is stale."""

import importlib.util
from pathlib import Path

import numpy as np

from hybrid_drift import HybridDetector
from hybrid_drift.io import expand_inputs
from hybrid_drift.report import score_report

ROOT = Path(__file__).resolve().parents[1]


def _screenshots():
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "benchmarks" / "screenshots.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_report_screenshot_in_the_readme_is_not_stale(frames, tmp_path):
    from PIL import Image
    recorded = Image.open(ROOT / "docs" / "report.png").text.get("hybrid_drift-sections")
    assert recorded, "docs/report.png records no report sections: run `make screenshots`"
    det = HybridDetector(cnn=False).fit(frames[:60])
    batch = frames[100:110] + [255 - frames[110]]
    table = det.score(batch)
    page = score_report(table, det, tmp_path / "r.html", labels=np.r_[np.zeros(10), 1], kinds=["normal"] * 10 + ["x"],
                        items=expand_inputs(batch))
    now = "|".join(_screenshots().section_titles(page.read_text()))
    assert now == recorded, f"the report's sections changed ({now} vs {recorded}): run `make screenshots`"
