"""``accept``: mark images a person judged normal (false alarms); the model's thresholds cover them."""

from __future__ import annotations

import sys

from .common import EXIT_OK, examples, UsageError, check_nonempty, runtime_from

__all__ = ["add"]


def add(sub, parents) -> None:
    from ..detector import HybridDetector
    s = sub.add_parser("accept", parents=[parents["common"], parents["runtime"]],
                       help="mark false alarms as normal: the model's thresholds grow to cover them",
                       description="Score IMAGES with the model and widen each branch's threshold just enough to "
                                   "cover them, recording what was accepted, by whom and when in the model. "
                                   "Refused (exit 2) when a threshold would grow by more than --max-widen: "
                                   "images that far from the reference are drift, to fit on, not false alarms.",
                       **examples("hybrid-drift accept model/ alarms/2026-11-30T0412.jpg --by alice --note 'delivery van'",
                                  "hybrid-drift accept model/ alarms/ --max-widen 1.2"))
    s.add_argument("model", help="model folder (updated in place)")
    s.add_argument("images", nargs="+", help="the frames a person judged normal")
    s.add_argument("--by", default=None, help="who accepted them (recorded in the model)")
    s.add_argument("--note", default=None, help="why (recorded in the model)")
    s.add_argument("--max-widen", type=float, default=HybridDetector.ACCEPT_MAX_WIDEN,
                   help="refuse when a threshold would grow by more than this factor (default %(default)s)")
    s.add_argument("--force", action="store_true", help="accept even when a threshold grows by more than that")
    s.set_defaults(fn=run)


def run(a) -> int:
    from ..detector import HybridDetector
    det = HybridDetector.load(a.model, runtime=runtime_from(a))
    items = check_nonempty(a.images, "images to accept")
    try:
        changed = det.accept(items, by=a.by, note=a.note, force=a.force, max_widen=a.max_widen)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    det.save(a.model)
    print(f"accepted {det.accepted_[-1]['n']} images as normal; model saved to {a.model}")
    for name, (old, new) in changed.items():
        print(f"  {name}: threshold {old:.4g} -> {new:.4g}" + ("" if new > old else " (unchanged: already covered)"))
    if det.accepted_[-1]["forced"]:
        print("warning: forced past --max-widen: the thresholds now cover images far from the reference",
              file=sys.stderr)
    return EXIT_OK
