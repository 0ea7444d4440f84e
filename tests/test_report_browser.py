"""The HTML report renders in a real browser (headless Chromium): no errors, every image decodes."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import TEST_IMAGE_SIZE
from hybrid_drift import CNNBranch, HybridDetector
from hybrid_drift.report import score_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-decoded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  document.body.setAttribute('data-errors', window.__errors.length);
});
</script></head>"""


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert exe, ("headless Chromium is needed for this test: `apt-get install chromium` "
                 "(make test installs it when run as root)")
    return exe


def _body_numbers(html: str, tmp_path) -> dict[str, str]:
    """Load ``html`` in headless Chromium (its scripts run) and return the numeric ``data-*`` attributes
    its scripts left on ``<body>``."""
    page = tmp_path / "page.html"
    page.write_text(html)
    run = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return dict(re.findall(r'data-(\w+)="(\d+)"', re.search(r"<body([^>]*)>", run.stdout).group(1)))


@pytest.fixture(scope="module")
def report(frames, tmp_path_factory):
    det = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False))
    det.fit(frames[:60]).calibrate(frames[60:90])
    out = tmp_path_factory.mktemp("report")
    paths = []
    import cv2
    for i, f in enumerate(frames[90:110] + [255 - frames[110], np.ascontiguousarray(frames[111][::-1])]):
        p = out / f"f{i:03d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    (out / "broken.jpg").write_bytes(b"")
    table = det.score(paths + [str(out / "broken.jpg")])
    assert table["is_outlier"].iloc[20:22].all()  # the two changed frames are flagged
    return score_report(table, det, out / "report.html", labels=[0] * 20 + [1, 1, 0],
                        kinds=["normal"] * 20 + ["invert", "vertical_flip", "normal"])


def test_report_is_self_contained(report):
    html = report.read_text()
    assert "<img" in html and 'src="http' not in html and "<script src" not in html
    assert html.count("data:image/png;base64,") >= 3 and "data:image/jpeg;base64," in html
    assert "broken.jpg" in html and "zero bytes" in html  # unreadable files are listed with the reason
    assert html.count("heat map:") >= 2  # every flagged thumbnail carries its heat map and its branch


def test_report_renders_in_headless_chromium(report, tmp_path):
    attrs = _body_numbers(report.read_text().replace("</head>", PROBE, 1), tmp_path)
    assert int(attrs["images"]) >= 6
    assert attrs["decoded"] == attrs["images"], attrs  # every embedded image decoded
    assert attrs["errors"] == "0"
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120)
    import cv2
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] == 1200 and img.std() > 10  # not a blank page


ACT = """<script>
window.addEventListener('load', () => {
  const b = document.body, t = document.getElementById('flagged'), sel = document.getElementById('flag-branch');
  const visible = () => Array.from(t.tBodies[0].rows).filter(r => r.style.display !== 'none');
  b.setAttribute('data-rows', t.tBodies[0].rows.length);
  b.setAttribute('data-pictures', t.querySelectorAll('img').length);
  sel.value = 'colour'; sel.dispatchEvent(new Event('change'));
  b.setAttribute('data-colour', visible().length);
  sel.value = 'cnn'; sel.dispatchEvent(new Event('change'));
  b.setAttribute('data-cnn', visible().length);
  sel.value = ''; sel.dispatchEvent(new Event('change'));
  const q = document.getElementById('flag-search');
  q.value = 'inv'; q.dispatchEvent(new Event('input'));
  b.setAttribute('data-inv', visible().length);
  q.value = ''; q.dispatchEvent(new Event('input'));
  const th = t.tHead.querySelector('th[data-key="row"]');
  th.click(); b.setAttribute('data-firstdesc', t.tBodies[0].rows[0].dataset.row);
  th.click(); b.setAttribute('data-firstasc', t.tBodies[0].rows[0].dataset.row);
});
</script></body>"""


def test_every_flagged_image_is_in_a_sortable_filterable_table(frames, tmp_path):
    """More flags than the top-12 thumbnails: the table lists every one, with the image and its heat map,
    and filtering by branch or name and sorting work in a real browser."""
    import cv2
    det = HybridDetector(cnn=CNNBranch(image_size=TEST_IMAGE_SIZE, cache_dir=False))

    def saved(items, prefix):  # the reference and the scored images both as JPEG files, as a camera gives them
        paths = []
        for i, (kind, f) in enumerate(items):
            p = tmp_path / f"{prefix}{i:03d}-{kind}.jpg"
            cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            paths.append(str(p))
        return paths

    det.fit(saved([("ref", f) for f in frames[:60]], "ref"))
    changed = [("inv", 255 - f) for f in frames[100:108]] + [("flip", np.ascontiguousarray(f[::-1]))
                                                            for f in frames[108:118]] + \
        [("blur", cv2.GaussianBlur(f, (0, 0), 2)) for f in frames[118:124]]  # the CNN's, not the colour's
    table = det.score(saved([("ok", f) for f in frames[90:100]] + changed, ""))
    n_flag = int(table["is_outlier"].sum())
    assert n_flag > 12  # more than the top-12 thumbnails show
    out = score_report(table, det, tmp_path / "report.html")
    attrs = _body_numbers(out.read_text().replace("</body>", ACT, 1), tmp_path)
    flagged = table[table["is_outlier"] == True]  # noqa: E712
    assert int(attrs["rows"]) == n_flag and int(attrs["pictures"]) == 2 * n_flag  # the image and its heat map
    assert int(attrs["colour"]) == int(flagged["colour_flag"].sum()) < n_flag  # the filter does filter
    assert int(attrs["cnn"]) == int(flagged["cnn_flag"].sum())
    assert int(attrs["inv"]) == int(flagged["path"].str.contains("inv").sum())
    assert int(attrs["firstdesc"]) == flagged.index.max() and int(attrs["firstasc"]) == flagged.index.min()
