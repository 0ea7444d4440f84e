"""``record``: a reference taken from the stream the model will watch, written so that ``fit`` takes it as it is."""

import csv
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_video
from hybrid_drift import HybridDetector
from hybrid_drift.cli import main
from hybrid_drift.io.order import order_inputs
from hybrid_drift.io.sources import expand_inputs
from hybrid_drift.watch.record import record
from test_watch import _MJPEGServer, _port


@pytest.fixture(scope="module")
def video(frames, tmp_path_factory):
    """40 frames of the street at 10 fps: 4 s."""
    return write_video(tmp_path_factory.mktemp("record-video") / "cam.avi", frames[:40])


def _decoded(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _rows(out: Path) -> list[dict]:
    with open(out / "frames.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_one_frame_every_half_second_of_a_video_as_lossless_pngs_in_time_order(video, tmp_path):
    out = tmp_path / "reference"
    res = record(str(video), out, every=0.5, settle=0)
    assert (res.saved, res.ended, res.unreadable) == (8, "source", 0)      # 4 s at 10 fps, one every 0.5 s
    files = sorted(p.name for p in out.glob("frame_*.png"))
    assert files == [f"frame_{i:06d}.png" for i in range(8)]
    decoded = _decoded(video)
    rows = _rows(out)
    assert [r["file"] for r in rows] == files
    assert [int(r["index"]) for r in rows] == [0, 5, 10, 15, 20, 25, 30, 35]
    times = [float(r["stream_time"]) for r in rows]
    assert times == sorted(times) and times[1] == pytest.approx(0.5)
    for r in rows:  # the stream's pixels as decoded, nothing re-encoded
        got = cv2.cvtColor(cv2.imread(str(out / r["file"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(got, decoded[int(r["index"])])
    # fit takes the folder as it is (frames.csv is not an image), in the order recorded
    items = expand_inputs([str(out)])
    ordered, how = order_inputs(items, "auto")
    assert [Path(it.id).name for it in ordered] == files and how.used == "name"
    det = HybridDetector(cnn=False).fit(str(out))
    assert det.score(str(out))["error"].isna().all()


def test_recording_again_continues_the_numbering_and_a_stop_leaves_whole_files(video, tmp_path):
    out = tmp_path / "ref"
    first = record(str(video), out, every=0, frames=3, settle=0)
    assert (first.saved, first.ended) == (3, "frames")
    stop = threading.Event()
    second = record(str(video), out, every=0, settle=0, stop=stop, on_frame=lambda name: stop.set())
    assert (second.saved, second.ended, second.first) == (1, "stopped", "frame_000003.png")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png", "frame_000003.png", "frames.csv"]
    assert [r["file"] for r in _rows(out)] == names[:-1]          # one header, every file listed once
    assert (out / "frames.csv").read_text().count("file,source") == 1


def test_bad_input_exits_2_naming_it(video, tmp_path, capsys):
    assert main(["record", str(tmp_path / "nope.avi"), str(tmp_path / "o"), "--no-progress"]) == 2
    assert "nope.avi" in capsys.readouterr().err
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main(["record", str(video), str(a_file), "--no-progress"]) == 2
    assert "taken: exists and is not a folder" in capsys.readouterr().err
    assert main(["record", str(video), str(tmp_path / "o"), "--format", "jpg", "--quality", "101"]) == 2
    err = capsys.readouterr().err
    assert "--quality" in err and "1..100" in err, err
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video")
    assert main(["record", str(bad), str(tmp_path / "o2"), "--no-progress"]) == 2
    assert "no frame was read" in capsys.readouterr().err


def test_the_command_records_jpeg_at_the_quality_asked(video, tmp_path, capsys):
    out = tmp_path / "jpg"
    assert main(["record", str(video), str(out), "--every", "1", "--format", "jpg", "--quality", "60",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "4 frames written" in err and "ended: source" in err
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"frame_{i:06d}.jpg" for i in range(4)]


def test_a_served_mjpeg_stream_is_recorded(video, tmp_path):
    server = _MJPEGServer(video, _port())
    try:
        res = record(server.url, tmp_path / "live", every=0.25, frames=3, duration=30, settle=0)
    finally:
        server.stop()
    assert (res.saved, res.ended) == (3, "frames")
    rows = _rows(tmp_path / "live")
    assert len(rows) == 3 and all(r["source"] == server.url for r in rows)
    first = cv2.imread(str(tmp_path / "live" / rows[0]["file"]))
    assert first.shape == (144, 192, 3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_a_live_recording_with_whole_listed_files_and_exit_130(video, tmp_path, sig):
    """A live stream never ends by itself: the signal stops it like --frames, with the summary."""
    server = _MJPEGServer(video, _port())
    out = tmp_path / "live"
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_drift.cli", "record", server.url, str(out),
                             "--every", "0.1", "--settle-seconds", "0", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list(out.glob("frame_*.png"))) < 2:
            time.sleep(0.1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert proc.returncode == 130, err
    assert "ended: stopped" in err
    files = sorted(p.name for p in out.glob("frame_*.png"))
    assert len(files) >= 2 and not list(out.glob(".*"))  # no temporary file left behind
    assert [r["file"] for r in _rows(out)] == files
    assert all(cv2.imread(str(out / f)) is not None for f in files)


def test_an_unreadable_file_of_a_folder_source_is_reported_and_the_others_are_written(frames, tmp_path):
    src = tmp_path / "incoming"
    src.mkdir()
    for i, f in enumerate(frames[:4]):
        cv2.imwrite(str(src / f"cam_{i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (src / "cam_2b.jpg").write_bytes(b"\xff\xd8 not a picture")
    res = record(str(src), tmp_path / "ref", every=0, frames=4, duration=60, settle=0)
    assert (res.saved, res.ended, res.unreadable) == (4, "frames", 1)
    assert "cam_2b.jpg" in res.first_error and any("cam_2b.jpg" in line for line in res.lines())
    assert len(_rows(tmp_path / "ref")) == 4
