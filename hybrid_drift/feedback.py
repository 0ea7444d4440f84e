"""Operator feedback: what a person watching the camera tells the model (mixed into the detector).

* :meth:`OperatorFeedback.accept` -- "these frames are normal" (a false alarm): each branch's
  threshold grows to cover them, within a stated factor, and the model records what was
  accepted, by whom and when.
"""

from __future__ import annotations


__all__ = ["OperatorFeedback"]


class OperatorFeedback:
    """The feedback verbs of a fitted detector (needs ``branches_``, ``fusion``, ``extract``,
    ``branch_scores`` and ``_rule`` from the host)."""

    #: largest factor a threshold may widen by when frames are accepted as normal, unless forced
    ACCEPT_MAX_WIDEN = 1.5

    def accept(self, X, *, by: str | None = None, note: str | None = None, force: bool = False,
               max_widen: float | None = None) -> dict:
        """Mark images a person judged normal (false alarms): each branch's threshold grows just enough to
        cover them (:meth:`~hybrid_drift.branches.Branch.accept_scores`), and the model records what was
        accepted, by whom and when (``accepted_``, saved with it).

        A threshold that would grow by more than ``max_widen`` (default :data:`ACCEPT_MAX_WIDEN`) is
        refused, naming the branch and the factor, unless ``force``: frames that far from the reference
        are drift to refit on, not a false alarm to absorb silently. Needs OR fusion (logistic fusion
        does not use the branch thresholds). Returns ``{branch: (old, new)}`` thresholds.
        """
        import datetime as _dt
        self._check_fitted(calibrated=True)
        if self.fusion != "or":
            raise ValueError("accept() adjusts the branch thresholds, which fusion='or' decides with; this model "
                             f"uses fusion={self.fusion!r}: calibrate it again with the frames labelled 0 instead")
        limit = self.ACCEPT_MAX_WIDEN if max_widen is None else float(max_widen)
        ext = self.extract(X, desc="accept")
        if ext.n_ok == 0:
            raise ValueError(f"no readable image to accept; first error: {ext.first_error()}")
        S = self.branch_scores(ext)
        widen = {b.name: (lambda o, n: n / o if o > 0 else 1.0)(*b.accept_scores(S[:, j], dry_run=True))
                 for j, b in enumerate(self.branches_)}
        too_far = {k: f for k, f in widen.items() if f > limit}
        if too_far and not force:
            worst = max(too_far, key=too_far.get)
            raise ValueError(f"accepting these {ext.n_ok} images would widen the {worst} threshold "
                             f"{too_far[worst]:.2f}x (more than {limit:g}x): they are far from the reference, "
                             "which looks like drift (a moved camera, new conditions) more than a false alarm. "
                             "Fit on footage that shows it, or accept with force")
        changed = {b.name: b.accept_scores(S[:, j]) for j, b in enumerate(self.branches_)}
        record = {"images": [i for i, e in zip(ext.ids, ext.errors) if not e][:1000], "n": int(ext.n_ok),
                  "by": by, "note": note, "forced": bool(force and bool(too_far)),
                  "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "thresholds": {k: [float(a), float(b)] for k, (a, b) in changed.items()}}
        self.accepted_ = [*getattr(self, "accepted_", []), record]
        return changed
