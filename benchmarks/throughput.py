"""Images/second of each stage and branch, measured side by side in one run.

    python benchmarks/throughput.py [--n 300] [--workers 2] [--peers .venv-peers/bin/python]

Uses real 768x576 JPEG frames of the bundled street video (written to a temporary
folder first), a cold feature cache (the CNN cache is disabled) and prints a
markdown table with absolute rates and the ratios that matter:

* colour branch (decode + HSV + histograms) vs the bare reduced-size decode (1/4, the
  size the colour branch decodes at) on the same number of threads, and vs a plain
  PIL + NumPy HSB implementation (full decode, per-channel histograms); best of
  ``--repeats`` interleaved rounds, and the median and range of the ratio per round;
* CNN branch end-to-end (decode → resize → backbone → pooled features) on each installed
  runtime (PyTorch eager, ONNX Runtime, OpenVINO fp32) vs each runtime's bare forward pass
  on the same frames (decoded and resized beforehand), and vs the PyTorch branch, with the
  largest feature difference to PyTorch and the network's FLOPs per image
  (``--cnn-repeats`` interleaved rounds); the CNN and patch branches together (one pass: the
  patch branch reads the CNN branch's feature map) vs the same bare forward pass, and the
  patch branch's scoring rate;
* PCA reconstruction scoring per image, vs NannyML's DataReconstructionDriftCalculator
  with chunk size 1 (its only way to give one error per image) on the same embeddings;
* whylogs' ``log_image`` (default image features, PIL decode included) on the same files.

The peers run in their own venv (``make peers``; whylogs 1.6 needs numpy < 2) through
``benchmarks/peers.py``; without it their rows are skipped with a note.

Not a test: these machines are shared and noisy; run it a few times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid_drift import (BandBranch, CNNBranch, ColourBranch, FlatBranch, LightBranch, PatchBranch, ShiftBranch,  # noqa: E402
                          TearBranch, extract)
from hybrid_drift.features.runners import backend_available  # noqa: E402
from hybrid_drift.datasets.crossroad import bundled_data_dir  # noqa: E402
from hybrid_drift.io import decode_image, iter_video_frames, list_images  # noqa: E402
from hybrid_drift.scorers import PCAReconstructionScorer  # noqa: E402


def write_frames(n: int, out: Path) -> list[str]:
    for i, rgb in iter_video_frames(bundled_data_dir() / "vtest.avi", stop=n):
        cv2.imwrite(str(out / f"f{i:04d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return list_images(out)


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


class Rounds(dict):
    """Images/second of each function per round (``self[name]``) and CPU seconds per image (``.cpu``)."""

    def __init__(self, names):
        super().__init__({k: [] for k in names})
        self.cpu = {k: [] for k in names}


def round_rates(n: int, repeats: int, fns: dict) -> Rounds:
    """Images/second of each function in each of ``repeats`` rounds that run every function once.

    Every other round runs the functions in reverse order, so a machine that speeds up
    or slows down during a round favours no function. The process CPU time of each run
    is kept too: on a shared virtual machine, time stolen by other guests stretches the
    wall clock but is not charged to this process.
    """
    out = Rounds(fns)
    for i in range(repeats):
        for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            c0 = time.process_time()
            out[k].append(rate(n, fns[k]))
            out.cpu[k].append((time.process_time() - c0) / n)
    return out


def paired(rates: Rounds, a: str, b: str) -> str:
    """``a`` vs ``b``: ratio of the best rates, median (range) of the per-round ratios, and of CPU time per image."""
    per_round = sorted(x / y for x, y in zip(rates[a], rates[b]))
    cpu = min(rates.cpu[b]) / min(rates.cpu[a])
    return (f"{max(rates[a]) / max(rates[b]):.2f}x (per round: median {statistics.median(per_round):.2f}x, "
            f"{per_round[0]:.2f}-{per_round[-1]:.2f}x; CPU time per image: {cpu:.2f}x)")


def pil_numpy_hsb(paths, bins=32):
    """The peer: what a user would write with PIL and NumPy alone."""
    from PIL import Image
    for p in paths:
        hsv = np.asarray(Image.open(p).convert("HSV"))
        for c in range(3):
            np.histogram(hsv[..., c], bins=bins, range=(0, 256))


def peer(python, *args) -> dict | None:
    import json
    import subprocess
    if not python or not Path(python).exists():
        return None
    env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1")
    r = subprocess.run([python, str(Path(__file__).parent / "peers.py"), *args], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        print(f"peer {args[0]} failed: {r.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="frames (default 300)")
    ap.add_argument("--n-cnn", type=int, default=128, help="frames for the CNN rows (default 128)")
    ap.add_argument("--workers", type=int, default=None, help="decode threads (default: one per core)")
    ap.add_argument("--repeats", type=int, default=9,
                    help="interleaved rounds for the decode/colour rows (default 9): best rate, per-round ratios")
    ap.add_argument("--cnn-repeats", type=int, default=3,
                    help="interleaved rounds for the CNN forward / end-to-end rows (default 3)")
    ap.add_argument("--no-cnn", action="store_true", help="only the decode and colour rows (and whylogs)")
    ap.add_argument("--peers", default=str(Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"),
                    help="python of the peers venv (whylogs, nannyml)")
    ap.add_argument("--scale", type=int, nargs="*", default=[1000, 10000, 100000],
                    help="colour-branch rates at these image counts (frames cycled)")
    a = ap.parse_args()
    import torch
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_frames(a.n, Path(tmp))
        n = len(paths)
        for p in paths:  # warm the OS page cache so every row reads from memory
            Path(p).read_bytes()
        workers = a.workers or os.cpu_count()
        colour, colour_1x1, light, shift = ColourBranch(), ColourBranch(grid=(1, 1)), LightBranch(), ShiftBranch()
        bands, flat, tear = BandBranch(), FlatBranch(), TearBranch()
        pool = ThreadPoolExecutor(workers)

        def decode_pool(flag):
            return lambda: list(pool.map(lambda p: cv2.imread(p, flag), paths))

        # `repeats` short rounds (each variant once over the frames, about 3 s a round),
        # variants interleaved, each colour row next to its bare decode, so a slow moment of
        # this shared machine hits them alike; rates are the best round, ratios also per round
        rr = round_rates(n, a.repeats, {
            "full1": lambda: [cv2.imread(p) for p in paths],
            "red2_1": lambda: [cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_2) for p in paths],
            "red4_1": lambda: [cv2.imread(p, cv2.IMREAD_REDUCED_COLOR_4) for p in paths],
            "colour1": lambda: extract([colour], paths, workers=1),
            "red4_n": decode_pool(cv2.IMREAD_REDUCED_COLOR_4),
            "colour_n": lambda: extract([colour], paths, workers=workers),
            "colour1x1_n": lambda: extract([colour_1x1], paths, workers=workers),
            "colour_light_n": lambda: extract([colour, light], paths, workers=workers),
            "cheap3_n": lambda: extract([colour, light, shift], paths, workers=workers),
            "cheap4_n": lambda: extract([colour, light, shift, bands], paths, workers=workers),
            "cheap5_n": lambda: extract([colour, light, shift, bands, flat], paths, workers=workers),
            "cheap_n": lambda: extract([colour, light, shift, bands, flat, tear], paths, workers=workers),
        })
        pool.shutdown()
        r = {k: max(v) for k, v in rr.items()}
        # the slow peer (about 50 img/s) in its own rounds, on 100 frames
        r["peer"] = max(round_rates(100, 2, {"peer": lambda: pil_numpy_hsb(paths[:100])})["peer"])
        list_file = Path(tmp) / "paths.txt"
        list_file.write_text("\n".join(paths[:100]))
        wl = peer(a.peers, "whylogs", str(list_file))
        r_wl = wl["images_per_s"] if wl else float("nan")
        vs_wl = (lambda x: f"; {x / r_wl:.1f}x whylogs") if wl else (lambda x: "; whylogs not measured (make peers)")
        rows += [("decode, full size (cv2.imread), 1 thread", r["full1"], ""),
                 ("decode, 1/2 size in the DCT domain (IMREAD_REDUCED_COLOR_2), 1 thread", r["red2_1"], ""),
                 ("decode, 1/4 size in the DCT domain (IMREAD_REDUCED_COLOR_4), 1 thread", r["red4_1"], ""),
                 (f"decode, 1/4 size, {workers} threads", r["red4_n"], ""),
                 ("peer: PIL decode + HSV + NumPy histograms, 1 thread (100 frames)", r["peer"], ""),
                 ("colour branch (decode 1/4 + HSV + 4x4 grid x 3 x 32-bin histograms), 1 thread", r["colour1"],
                  f"{paired(rr, 'colour1', 'red4_1')} bare 1/4 decode (1 thread); {r['colour1'] / r['peer']:.1f}x peer"
                  + vs_wl(r["colour1"])),
                 (f"colour branch, {workers} threads", r["colour_n"],
                  f"{paired(rr, 'colour_n', 'red4_n')} bare 1/4 decode ({workers} threads)" + vs_wl(r["colour_n"])),
                 (f"colour branch, whole-image histograms (grid 1x1, the whylogs-style profile), {workers} threads",
                  r["colour1x1_n"], f"{paired(rr, 'colour1x1_n', 'red4_n')} bare 1/4 decode ({workers} threads)"
                  + vs_wl(r["colour1x1_n"])),
                 (f"colour + light branches, {workers} threads",
                  r["colour_light_n"], f"{paired(rr, 'colour_light_n', 'colour_n')} colour branch alone ({workers} threads)"),
                 (f"colour + light + shift features, {workers} threads",
                  r["cheap3_n"], f"{paired(rr, 'cheap3_n', 'colour_n')} colour branch alone ({workers} threads)"),
                 (f"colour + light + shift + bands features, {workers} threads",
                  r["cheap4_n"], f"{paired(rr, 'cheap4_n', 'cheap3_n')} without the bands branch ({workers} threads)"),
                 (f"colour + light + shift + bands + flat-rows features, {workers} threads",
                  r["cheap5_n"], f"{paired(rr, 'cheap5_n', 'cheap4_n')} without the flat-rows branch ({workers} threads)"),
                 (f"colour + light + shift + bands + flat-rows + tear features (the default detector's cheap branches), "
                  f"{workers} threads",
                  r["cheap_n"], f"{paired(rr, 'cheap_n', 'colour_n')} colour branch alone; "
                                f"{paired(rr, 'cheap_n', 'cheap5_n')} without the tear branch ({workers} threads)")]
        if wl:
            rows.append((f"peer: whylogs {wl['version']} log_image, default features, PIL decode, 1 thread "
                         f"({wl['n']} images)", r_wl, ""))
        for n_scale in a.scale:
            cyc = [paths[i % n] for i in range(n_scale)]
            rows.append((f"colour branch, {n_scale:,} images (frames cycled), {workers} threads",
                         rate(n_scale, lambda: extract([colour], cyc, workers=workers)), ""))

        if a.no_cnn:
            return print_table(rows, n, None, torch)
        cnn_paths = paths[: a.n_cnn]
        m = len(cnn_paths)
        backends = [b for b in ("torch", "onnxruntime", "openvino") if backend_available(b)]
        default_backend = CNNBranch(cache_dir=False).embedder.resolved_backend
        for name, kw in (("default: max-pool block10+head, 288x384", {}),
                         ("study: avg-pool head, 224x224", {"pool": "avg", "layers": ("head",), "image_size": 224})):
            study = "study" in name
            runs = {b: CNNBranch(cache_dir=False, backend=b, **kw) for b in (["torch", default_backend] if study
                                                                               else backends)}
            br0 = next(iter(runs.values()))
            # the bare forward pass runs on the same frames, decoded and resized beforehand
            batch = np.stack([br0.embedder.preprocess(decode_image(p, reduce="auto", min_side=br0.min_side).rgb)
                              for p in cnn_paths])
            fns, feats = {}, {}
            for b, br in runs.items():
                br.embedder.embed(batch[:8])  # load / export + warm up
                fns[f"bare {b}"] = (lambda e=br.embedder: e.embed(batch))
                fns[f"e2e {b}"] = (lambda r=br, b=b: feats.__setitem__(b, extract([r], cnn_paths, workers=a.workers)))
            if not study:  # the default detector's patch branch reads the same pass (issue 21: no second pass)
                cnn_p = CNNBranch(cache_dir=False, backend=default_backend, **kw)
                patch = PatchBranch.default_beside([cnn_p])
                cnn_p.embedder.embed_maps(batch[:8])
                fns["e2e patch"] = lambda: feats.__setitem__("patch", extract([cnn_p, patch], cnn_paths,
                                                                               workers=a.workers))
            cr = round_rates(m, a.cnn_repeats, fns)
            for b in runs:
                tag = f"{name}, {b}" + (" = default" if b == default_backend else "")
                rows += [(f"CNN forward only ({tag}), batch {br0.batch_size}", max(cr[f"bare {b}"]), ""),
                         (f"CNN branch end-to-end incl. decode ({tag})", max(cr[f"e2e {b}"]),
                          f"{paired(cr, f'e2e {b}', f'bare {b}')} its forward only" +
                          ("" if b == "torch" else f"; {paired(cr, f'e2e {b}', 'e2e torch')} the torch branch"))]
                if b != "torch":
                    ref, got = feats["torch"].features["cnn"], feats[b].features["cnn"]
                    rows.append((f"  largest feature difference, {b} vs torch", f"{np.abs(got - ref).max():.1e}",
                                 f"absolute, features up to {np.abs(ref).max():.0f} (not a rate)"))
            if not study:
                rows.append((f"CNN + patch branches end-to-end incl. decode, one pass ({name}, {default_backend})",
                             max(cr["e2e patch"]), f"{paired(cr, 'e2e patch', f'bare {default_backend}')} its forward "
                             f"only; {paired(cr, 'e2e patch', f'e2e {default_backend}')} the CNN branch alone"))
                P = feats["patch"].features["patch"]
                fitted = PatchBranch.default_beside([CNNBranch()]).fit_features(P)
                rows.append(("patch branch scoring (position-free PCA, strongest band), 1 thread",
                             rate(len(P), lambda: fitted.score_features(P)), "features already extracted"))
                emb_feats = feats["torch"].features["cnn"]
                flops = cnn_flops(br0)
                rows.append((f"CNN FLOPs per image ({name}), counted by torch.utils.flop_counter",
                             f"{flops / 1e9:.2f} GFLOP", "not a rate; forward-only throughput in FLOP/s: " + ", ".join(
                                 f"{b}: {max(cr[f'bare {b}']) * flops / 1e9:.0f} GFLOP/s" for b in runs)))
        # ResNet18 (the study's backbone): its ImageNet weights cannot be downloaded here, but the
        # forward cost does not depend on the weight values, so time the architecture itself
        import torchvision
        trunk = torch.nn.Sequential(*list(torchvision.models.resnet18(weights=None).children())[:-2]).eval()
        trunk = trunk.to(memory_format=torch.channels_last)
        for hw in ((224, 224), (288, 384)):
            x = torch.randn(32, 3, *hw).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                trunk(x[:4])
                r_rn = rate(64, lambda: [trunk(x) for _ in range(2)])
            rows.append((f"ResNet18 forward only, {hw[0]}x{hw[1]}, batch 32 (architecture timing, random weights)",
                         r_rn, ""))
        # per-image reconstruction error on the real embeddings: ours vs NannyML, same data
        k = min(100, len(emb_feats) // 2)  # a reference and frames to score, whatever --n-cnn
        ref, ana = emb_feats[:k], emb_feats[k:]
        sc = PCAReconstructionScorer(0.65).fit(ref)  # NannyML's default: 65% of the variance
        r_pca1 = rate(len(ana) * 20, lambda: [sc.score_samples(ana[i:i + 1]) for _ in range(20) for i in range(len(ana))])
        big = np.repeat(ana, 400, axis=0)
        r_pca = rate(len(big), lambda: sc.score_samples(big))
        np.save(Path(tmp) / "ref.npy", ref)
        np.save(Path(tmp) / "ana.npy", ana)
        nm = peer(a.peers, "nannyml", str(Path(tmp) / "ref.npy"), str(Path(tmp) / "ana.npy"))
        rows += [(f"PCA reconstruction error, {ref.shape[1]}-D real embeddings, one image per call", r_pca1,
                  f"{1e3 / r_pca1:.3f} ms/image" + (f"; {nm['seconds_per_image'] * r_pca1:,.0f}x NannyML" if nm else "")),
                 (f"PCA reconstruction error, batch of {len(big):,}", r_pca, f"{1e6 / r_pca:.1f} us/image")]
        if nm:
            rows.append((f"peer: NannyML {nm['version']} DataReconstructionDriftCalculator, chunk_size=1 "
                         f"({nm['n']} images)", 1 / nm["seconds_per_image"], f"{nm['seconds_per_image'] * 1e3:.0f} ms/image"))

    print_table(rows, n, m, torch)


def cnn_flops(branch) -> float:
    """Floating-point operations of one forward pass of the branch's network at its input size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    emb = branch.embedder
    emb._load()
    h, w = emb.image_size
    x = torch.zeros((1, h, w, 3), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        emb._features_torch(x)
    return float(counter.get_total_flops())


def print_table(rows, n, m, torch):
    print(f"\n{n} frames 768x576 JPEG (CNN rows: {m or 'not run'}); {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), OpenCV {cv2.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| stage | images/s | ratio |\n|---|---:|---|")
    for name, r, ratio in rows:
        print(f"| {name} | {r if isinstance(r, str) else f'{r:,.1f}'} | {ratio} |")


if __name__ == "__main__":
    main()
