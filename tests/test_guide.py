"""docs/your-camera.md runs as written: every `hybrid-drift` command in it, on a small generated camera
(the street video's frames, names not zero-padded, a broken file and two faults among today's images).
The RTSP URL of the record and watch steps is the only substitution (a video file of the same frames; record
writes into a folder of its own, one frame a second of the 4-second video)."""

import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from conftest import write_video
from hybrid_drift.cli import main

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "your-camera.md"


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    return [shlex.split(ln)[1:] for ln in lines if ln.startswith("hybrid-drift ")]


def test_the_guide_runs_as_written_on_a_small_camera(frames, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ref, today = Path("footage/reference"), Path("footage/today")
    ref.mkdir(parents=True)
    today.mkdir(parents=True)
    for i, f in enumerate(frames[:120]):  # cam_9 before cam_10: natural order, not name order
        cv2.imwrite(str(ref / f"cam_{i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    for i, f in enumerate(frames[120:160]):
        cv2.imwrite(str(today / f"cam_{120 + i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(today / "fault_inverted.jpg"), 255 - cv2.cvtColor(frames[150], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(today / "fault_black.jpg"), np.zeros_like(frames[150]))
    (today / "broken.jpg").write_bytes(b"\xff\xd8 not a picture")
    video = write_video(tmp_path / "stream.avi", frames[120:160])
    cmds = _commands()
    assert [c[0] for c in cmds] == ["record", "fit", "score", "watch"], cmds
    for cmd in cmds:
        cmd = [str(video) if c.startswith("rtsp://") else c for c in cmd]
        if cmd[0] == "record":  # into a folder of its own: the reference above is the street's 120 frames
            cmd = [c.replace("footage/reference", "footage/recorded") for c in cmd]
            cmd[cmd.index("--every") + 1] = "1"
        if cmd[0] == "watch":
            cmd += ["--max-frames", "10"]
        capsys.readouterr()
        assert main(cmd + ["--no-progress"]) == 0, cmd
        out, err = capsys.readouterr()
        if cmd[0] == "fit":  # the summary a newcomer reads: thresholds, the order check, too little footage
            assert "colour: threshold" in out and "cnn: threshold" in out and "order check" in out
            assert "the reference has only 120 readable images" in err
    assert sorted(p.name for p in Path("footage/recorded").glob("*.png")) == [f"frame_{i:06d}.png" for i in range(4)]
    table = pd.read_csv("scores.csv")
    assert len(table) == 43 and table.loc[table["path"].str.endswith("broken.jpg"), "error"].notna().all()
    flagged = set(table.loc[table["is_outlier"] == True, "path"].map(lambda p: Path(p).name))  # noqa: E712
    assert {"fault_inverted.jpg", "fault_black.jpg"} <= flagged
    assert Path("report.html").stat().st_size > 10_000
    events = Path("events.jsonl").read_text().splitlines()
    assert sum('"type": "frame"' in e for e in events) == 8  # 4 s of video at 10 fps, --fps 2 keeps 8
