"""The comparison's driver: check every input, then pre-train, evaluate
and report every method and seed, resuming what an earlier start left."""
import copy
import json
import os
import os.path as osp
import traceback
from typing import Dict, List, Optional, Sequence, TextIO

import torch

from ..backbones import load_backbone
from .configs import build_run_config, find_config, resolve_methods
from .data import (ComparisonData, compute_pretrain_proposals, prepare_data,
                   proposal_path)
from .evaluation import Evaluator, random_init_backbone
from .progress import ProgressMeter
from .report import (METRICS, report_entry, report_header, report_notes,
                     write_report)
from .settings import RECIPES, TEACHER_METHOD, CompareSettings, option_flag
from .training import CLOCK_FILE, clock_metrics, last_checkpoint, train

__all__ = ['EVALUATION_FILE', 'compare_methods']

EVALUATION_FILE = 'evaluation.json'


def _settings_file(work_dir: str) -> str:
    """Where a comparison keeps its settings."""
    return osp.join(work_dir, 'comparison.json')


def _refuse_other_settings(work_dir: str, settings: CompareSettings) -> None:
    """Raise if ``work_dir`` holds a comparison with other training
    settings."""
    path = _settings_file(work_dir)
    if not osp.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    current = settings.training()
    # a setting added since the work directory was made had its default
    saved = {**CompareSettings(settings.data).training(), **saved}
    changed = [k for k in current if saved.get(k) != current[k]]
    if changed:
        raise ValueError(
            f'{work_dir!r} holds a comparison trained with other settings: ' +
            ', '.join(f'{option_flag(k)} {saved.get(k)!r} there, '
                      f'{current[k]!r} now' for k in changed) +
            '. Use another --work-dir, or the same options to continue.')


def _runnable(resolved: Dict[str, dict],
              settings: CompareSettings) -> List[str]:
    """The methods that can run, the teacher's first; raise when none can or
    a teacher is missing."""
    order = [n for n, m in resolved.items() if m['available']]
    if not order:
        raise ValueError('no method can run: ' +
                         '; '.join(f'{n}: {m["reason"]}'
                                   for n, m in resolved.items()))
    if TEACHER_METHOD in order:
        order.remove(TEACHER_METHOD)
        order.insert(0, TEACHER_METHOD)
    needs_teacher = [n for n in order if resolved[n]['method'].teacher]
    if needs_teacher and not settings.teacher and TEACHER_METHOD not in order:
        raise ValueError(
            f'{", ".join(needs_teacher)} need(s) a teacher: add '
            f'{TEACHER_METHOD} to --methods or give --teacher CHECKPOINT')
    return order


def _plan(order: Sequence[str], resolved: Dict[str, dict],
          seeds: Sequence[int], settings: CompareSettings,
          data: ComparisonData, work_dir: str) -> Dict[str, float]:
    """The tasks left, with their rough cost in pre-training images."""
    batch = settings.batch_size or 16
    images = settings.epochs * (data.pretrain_count * settings.repeat //
                                batch) * batch
    tasks: Dict[str, float] = {}
    if (any(resolved[n]['needs_proposals'] for n in order)
            and not osp.exists(proposal_path(work_dir))):
        tasks['proposals'] = data.pretrain_count / 2
    for seed in seeds:
        for name in order:
            run_dir = osp.join(work_dir, 'runs', name, f'seed{seed}')
            if _finished_record(run_dir, settings):
                continue
            if (resolved[name]['config']
                    and not osp.exists(osp.join(run_dir, CLOCK_FILE))):
                tasks[f'{name} seed {seed}: training'] = (
                    images * resolved[name]['method'].cost)
            tasks[f'{name} seed {seed}: evaluation'] = (
                len(data.probe['train']) + len(data.probe['val'])) / 6
    return tasks


def compare_methods(settings: CompareSettings,
                    methods: Sequence[str] = (),
                    seeds: Sequence[int] = (0, ),
                    work_dir: str = 'work_dirs/compare',
                    command: str = '',
                    stream: Optional[TextIO] = None) -> dict:
    """Pre-train, evaluate and report every method, for every seed.

    Every input is checked before the first training. A run that fails is
    reported (and retried when the comparison is started again); the
    others go on.

    Args:
        settings (CompareSettings): Data, budget and probes.
        methods (Sequence[str]): See :func:`resolve_methods`. Empty: all.
        seeds (Sequence[int]): Seeds; each method runs once per seed.
        work_dir (str): Where runs, data links and the report go.
        command (str): The command line, for the report's header.
        stream (TextIO, optional): Progress output. Defaults to stdout.

    Returns:
        dict: ``runs`` (one record per method and seed), ``methods``
        (:func:`resolve_methods`) and ``files`` (the report's files).
    """
    import ediy_mm  # noqa: F401  (registers the modules of the configs)
    settings.validate()
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f'--seeds must be distinct values, got {seeds}')
    _refuse_other_settings(work_dir, settings)
    if settings.precision != 'fp32' and not torch.cuda.is_available():
        raise ValueError(f'--precision {settings.precision} needs a CUDA '
                         'GPU; use --precision fp32 on a CPU')
    resolved = resolve_methods(methods, settings.recipe)
    order = _runnable(resolved, settings)
    data = prepare_data(settings, work_dir)
    for name in order:  # a config the overrides break fails here
        if resolved[name]['config']:
            build_run_config(
                resolved[name]['config'], settings, seeds[0], work_dir,
                data.pretrain_dir, data.monitor_dirs, settings.teacher
                or 'teacher.pth' if resolved[name]['method'].teacher else None,
                'proposals.json')
    with open(_settings_file(work_dir), 'w') as f:
        json.dump(settings.training(), f, indent=1)

    progress = ProgressMeter(
        _plan(order, resolved, seeds, settings, data, work_dir), stream)
    if any(resolved[n]['needs_proposals'] for n in order):
        data.proposal_file = compute_pretrain_proposals(
            data, settings, work_dir, progress)
    # the anchor's backbone: the first trained method's, else the recipe's
    # BYOL's
    anchor = next(
        (resolved[n]['config'] for n in order if resolved[n]['config']),
        find_config(RECIPES[settings.recipe][TEACHER_METHOD]))
    evaluate = Evaluator(settings, data)
    runs: List[dict] = []
    for seed in seeds:
        for name in order:
            runs.append(
                _run(name, seed, resolved[name], settings, data, work_dir,
                     anchor, evaluate, progress, runs))
    entries = {n: report_entry(m) for n, m in resolved.items()}
    notes = report_notes(runs, resolved, settings)
    files = write_report(work_dir, runs, entries,
                         report_header(settings, data, seeds, command), notes)
    return dict(runs=runs, methods=resolved, files=files)


def _run(name: str, seed: int, entry: dict, settings: CompareSettings,
         data: ComparisonData, work_dir: str, anchor: str, evaluate: Evaluator,
         progress: ProgressMeter, earlier: List[dict]) -> dict:
    """Train (unless done) and evaluate (unless done) one method and seed
    (the random-init anchor: the backbone of the config ``anchor``); return
    its record."""
    run_dir = osp.abspath(osp.join(work_dir, 'runs', name, f'seed{seed}'))
    finished = _finished_record(run_dir, settings)
    if finished:
        return finished
    record = dict(
        method=name,
        seed=seed,
        status='ok',
        metrics={},
        evaluation=settings.evaluation())
    task = f'{name} seed {seed}'
    teacher = None
    if entry['method'].teacher:
        teacher = settings.teacher or _teacher_of(earlier, seed)
        if teacher is None:
            return dict(
                record,
                status='skipped',
                error=f'its teacher, the {TEACHER_METHOD} run of '
                f'seed {seed}, did not finish')
    os.makedirs(run_dir, exist_ok=True)
    try:
        if entry['config'] is None:
            model = random_init_backbone(anchor, seed)
        else:
            if not osp.exists(osp.join(run_dir, CLOCK_FILE)):
                cfg = build_run_config(entry['config'], settings, seed,
                                       run_dir, data.pretrain_dir,
                                       data.monitor_dirs, teacher,
                                       data.proposal_file)
                progress.update(f'{task}: training', 0, 'starting')
                train(
                    cfg, osp.join(run_dir, 'console.log'),
                    lambda fraction, note: progress.update(
                        f'{task}: training', fraction, note))
                progress.update(f'{task}: training', 1, 'done')
            record['checkpoint'] = last_checkpoint(run_dir)
            cost, record['knn_curve'] = clock_metrics(run_dir)
            record['metrics'].update(cost)
            model = load_backbone(record['checkpoint'])
        progress.update(f'{task}: evaluation', 0, 'probes')
        metrics, record['detail'] = evaluate(model)
        record['metrics'].update(metrics)
        progress.update(
            f'{task}: evaluation', 1,
            ', '.join(f'{METRICS[k].title} {v:.2f}'
                      for k, v in metrics.items()
                      if k in ('knn_top1', 'linear_top1', 'dense_miou')))
    except Exception as err:  # reported; the other runs go on
        with open(osp.join(run_dir, 'failure.txt'), 'w') as f:
            f.write(traceback.format_exc())
        message = f'{type(err).__name__}: {err}'.splitlines()[0]
        print(
            f'[compare] {task} failed: {message} (traceback in '
            f'{run_dir}/failure.txt)',
            file=progress.stream,
            flush=True)
        return dict(record, status='failed', error=message)
    with open(osp.join(run_dir, EVALUATION_FILE), 'w') as f:
        json.dump(record, f, indent=1)
    return copy.deepcopy(record)


def _finished_record(run_dir: str,
                     settings: CompareSettings) -> Optional[dict]:
    """The saved record of a run evaluated with the current probe settings
    (None when there is none)."""
    path = osp.join(run_dir, EVALUATION_FILE)
    if not osp.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record.get(
        'evaluation') == settings.evaluation() else None


def _teacher_of(runs: List[dict], seed: int) -> Optional[str]:
    """The checkpoint of the teacher method's successful run of ``seed``."""
    for run in runs:
        if (run['method'] == TEACHER_METHOD and run['seed'] == seed
                and run['status'] == 'ok'):
            return run['checkpoint']
    return None
