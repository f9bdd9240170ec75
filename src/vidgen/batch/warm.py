"""Imported by the batch's fork server only (``set_forkserver_preload``): load, once, what
every worker needs before it can run a job, so each forked worker starts warm and shares
these pages copy-on-write instead of spending seconds loading them itself.

- vidgen and torch (imported with this module);
- the packaged prompt policy (parsed and compiled; cached per process);
- the face models of the likeness scanner (dlib's detector and shape predictor, and the
  embedding network), cached per process by ``FaceAnalyzer``.

torch is held to one thread here, so the fork server never starts an OpenMP thread pool
(a pool does not survive ``fork``); each worker sets its own thread count. Nothing here
may raise: a failure only means the workers load these themselves.
"""

from __future__ import annotations


def _warm() -> None:
    try:
        import torch

        torch.set_num_threads(1)
        from vidgen.safety.prompt import load_policy

        load_policy()
        from vidgen.safety.likeness import FaceAnalyzer

        FaceAnalyzer()
    except Exception:
        return


_warm()
