"""Equal-budget comparison of pre-training methods on the user's images.

:func:`compare_methods` pre-trains every method of :data:`METHODS` (or the
user's own configs) for the same budget on the same images, through
mmengine's Runner with each method's real config, then evaluates each
frozen backbone with the same protocol and writes a report:

- weighted kNN (k 20, T 0.07) and a linear probe on a labelled split
  (:mod:`ediy_mm.analysis.probes`);
- a dense probe on a COCO-style json with masks
  (:mod:`ediy_mm.analysis.dense_probe`);
- region diversity (:func:`~ediy_mm.analysis.region_statistics`) and
  collapse indicators;
- the time per training step and images/s on this device
  (:class:`~ediy_mm.analysis.compare.training.TrainingClockHook`).

Budget: the same number of epochs for every method (the config's schedule
stretched to it), and optionally the same wall-clock minutes (training ends
at the deadline with a checkpoint). The kNN monitor
(:class:`~ediy_mm.engine.hooks.KNNMonitorHook`) draws the curves.

E-DIY's frozen teacher is the BYOL run of the same comparison and seed,
unless a teacher checkpoint is given. The comparison can be stopped and
started again: finished trainings (their ``training_clock.json``) and
evaluations (``evaluation.json``) are kept, an interrupted training resumes
from its last checkpoint.

One module per stage, in the order a comparison runs them:

- :mod:`.settings`: the known methods, their recipes, the protocols of
  docs/study.md (:data:`PRESETS`) and :class:`CompareSettings`;
- :mod:`.configs`: which methods can run, and each run's config;
- :mod:`.data`: the images of every stage;
- :mod:`.training`: the step clock, the wall-clock budget, a training run;
- :mod:`.evaluation`: the probes of a frozen backbone;
- :mod:`.report`: ``report.md``, ``results.{json,csv}`` and the figures;
- :mod:`.driver`: :func:`compare_methods`, which runs them all and resumes
  (:mod:`.progress`: its progress lines and ETA).
"""
from .configs import build_run_config, resolve_methods
from .data import find_coco_splits
from .driver import compare_methods
from .progress import ProgressMeter
from .settings import (METHODS, PRECISIONS, PRESETS, RECIPES, CompareSettings,
                       Method, Preset)

__all__ = [
    'METHODS', 'PRECISIONS', 'PRESETS', 'RECIPES', 'CompareSettings', 'Method',
    'Preset', 'ProgressMeter', 'build_run_config', 'compare_methods',
    'find_coco_splits', 'resolve_methods'
]
