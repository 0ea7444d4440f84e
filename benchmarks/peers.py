"""Peer tools, timed inside their own venv (`make peers`); called by throughput.py.

    python peers.py whylogs LIST_FILE      # images/s of whylogs' log_image (PIL decode included)
    python peers.py nannyml REF.npy ANA.npy  # seconds per image of NannyML's reconstruction error

Prints one JSON line.
"""

import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def whylogs_rate(list_file):
    from PIL import Image
    from whylogs.extras.image_metric import log_image
    paths = open(list_file).read().split("\n")
    paths = [p for p in paths if p]
    log_image(Image.open(paths[0]))  # warm-up (imports, lazy init)
    t = time.perf_counter()
    for p in paths:
        log_image(Image.open(p))  # default image features, as a user would call it
    return {"tool": "whylogs", "version": __import__("whylogs").__version__, "n": len(paths),
            "images_per_s": len(paths) / (time.perf_counter() - t)}


def nannyml_per_image(ref_file, ana_file):
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import numpy as np
    import pandas as pd
    import nannyml as nml
    ref, ana = np.load(ref_file), np.load(ana_file)
    cols = [f"f{i}" for i in range(ref.shape[1])]
    calc = nml.DataReconstructionDriftCalculator(column_names=cols, chunk_size=1)
    calc.fit(pd.DataFrame(ref, columns=cols))
    t = time.perf_counter()
    res = calc.calculate(pd.DataFrame(ana, columns=cols))  # chunk size 1 = one error per image
    dt = time.perf_counter() - t
    n_out = len(res.filter(period="analysis").to_df())
    return {"tool": "nannyml", "version": nml.__version__, "n": len(ana), "rows_out": n_out,
            "seconds_per_image": dt / len(ana)}


if __name__ == "__main__":
    kind = sys.argv[1]
    out = whylogs_rate(sys.argv[2]) if kind == "whylogs" else nannyml_per_image(sys.argv[2], sys.argv[3])
    print(json.dumps(out))
