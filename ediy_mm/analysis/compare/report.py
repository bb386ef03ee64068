"""The report of a method comparison: markdown tables, JSON, CSV and PNGs.

:func:`write_report` reads nothing from the runs themselves: it gets, per
(method, seed), the record that :mod:`ediy_mm.analysis.compare.driver`
saved after evaluating it (metrics and kNN curve), and writes to the work
directory:

- ``report.md``: a header with the exact command, the versions, the device
  and the protocol; one table per group of :data:`METRICS` (mean ± sample
  std over seeds); the methods that are not available or failed, and why;
  the figures;
- ``results.json`` (everything) and ``results.csv`` (one row per run);
- ``probes.png`` (headline metrics per method, seeds as dots) and
  ``knn_curves.png`` (kNN top-1 of ``KNNMonitorHook`` over training).
"""
import csv
import datetime
import importlib.metadata
import json
import math
import os
import os.path as osp
import platform
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..plotting import new_figure, save_figure
from .data import ComparisonData
from .settings import ROOT, CompareSettings

__all__ = [
    'HEADLINE', 'METRICS', 'Metric', 'device_description',
    'environment_versions', 'format_cell', 'report_entry', 'report_header',
    'report_notes', 'write_report'
]


@dataclass(frozen=True)
class Metric:
    """A column of the report.

    Attributes:
        title (str): Column title.
        group (str): The table it belongs to.
        digits (int): Decimals shown.
        description (str): One line for the protocol section.
    """

    title: str
    group: str
    digits: int
    description: str


#: Every metric of a run, in table order.
METRICS: Dict[str, Metric] = {
    'knn_top1':
    Metric('kNN top-1 %', 'probes', 2,
           'weighted kNN (k 20, T 0.07) on the labelled split'),
    'knn_top5':
    Metric('kNN top-5 %', 'probes', 2, 'same, top-5'),
    'linear_top1':
    Metric('linear top-1 %', 'probes', 2,
           'logistic regression on frozen pooled features (L-BFGS, L2)'),
    'linear_top5':
    Metric('linear top-5 %', 'probes', 2, 'same, top-5'),
    'easy_knn_top1':
    Metric('easy kNN top-1 %', 'probes', 2,
           'kNN top-1 on the easy split (--easy-classes)'),
    'easy_linear_top1':
    Metric('easy linear top-1 %', 'probes', 2,
           'linear top-1 on the easy split'),
    'dense_miou':
    Metric(
        'dense mIoU %', 'probes', 2,
        '1x1 linear classifier on frozen layer-4 maps, masks of the COCO '
        'json, mean IoU over background + categories'),
    'dense_fg_iou':
    Metric('dense fg IoU %', 'probes', 2,
           'same, mean IoU over the categories only'),
    'region_mean_cosine':
    Metric(
        'region cos', 'features', 3,
        'mean pairwise cosine of the layer-4 regions of an image '
        '(collapse -> 1)'),
    'region_effective_rank':
    Metric('region eff. rank', 'features', 2,
           'effective rank of the regions of an image (collapse -> 1)'),
    'region_nn_correspondence':
    Metric(
        'region NN corr.', 'features', 3,
        'share of regions whose nearest region in an overlapping view is '
        'the same place'),
    'global_effective_rank':
    Metric(
        'global eff. rank', 'features', 1,
        'effective rank of the pooled val features across images '
        '(collapse -> 1)'),
    'feature_std':
    Metric('feature std', 'features', 3,
           'std of the unit pooled features x sqrt(C) (collapse -> 0)'),
    'step_ms':
    Metric('step ms', 'cost', 1,
           'median training step (forward, backward, update)'),
    'images_per_s':
    Metric('img/s', 'cost', 1, 'batch / median step (both views count as one '
           'image)'),
    'train_minutes':
    Metric('train min', 'cost', 1,
           'wall-clock pre-training time, kNN monitor included'),
    'epochs':
    Metric(
        'epochs', 'cost', 2, 'epochs trained (fractional when '
        'a wall-clock budget cut the last one)'),
}

#: The metrics drawn in ``probes.png``.
HEADLINE = ('knn_top1', 'linear_top1', 'easy_knn_top1', 'easy_linear_top1',
            'dense_miou', 'region_mean_cosine', 'region_effective_rank',
            'images_per_s')

GROUP_TITLES = {
    'probes': 'Frozen-feature probes',
    'features': 'Region diversity and collapse indicators',
    'cost': 'Cost on this device',
}

PACKAGES = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmpretrain', 'mmdet',
            'numpy')


def environment_versions() -> Dict[str, str]:
    """Python, the packages of :data:`PACKAGES` and ediy_mm's git commit."""
    versions = {'python': platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    try:
        commit = subprocess.run(['git', 'describe', '--always', '--dirty'],
                                cwd=ROOT,
                                capture_output=True,
                                text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ''
    versions['ediy_mm'] = importlib.metadata.version('ediy_mm') + (
        f' (git {commit})' if commit else '')
    return versions


def device_description() -> str:
    """The GPU, or the CPU model with its core and thread counts."""
    if torch.cuda.is_available():
        return (f'CUDA: {torch.cuda.get_device_name()} '
                f'({torch.cuda.device_count()} visible)')
    model = platform.processor() or 'unknown CPU'
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            names = [
                line.split(':', 1)[1].strip() for line in f
                if line.startswith('model name')
            ]
        model = names[0] if names else model
    threads = torch.get_num_threads()
    return (f'CPU only: {model}, {os.cpu_count()} cores, {threads} torch '
            f'thread{"s" if threads > 1 else ""}')


def _stats(values: Sequence[float]) -> Optional[tuple]:
    """Mean, sample std (NaN for one value) and count of finite values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    return float(np.mean(finite)), std, len(finite)


def format_cell(values: Sequence[float], digits: int) -> str:
    """``mean ± std`` of the seeds (one value alone; ``–`` for none)."""
    stats = _stats(values)
    if stats is None:
        return '–'
    mean, std, count = stats
    if count == 1:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _values(runs: List[dict], method: str, key: str) -> List[float]:
    """The value of ``key`` in each successful run of ``method``."""
    return [
        r['metrics'].get(key) for r in runs
        if r['method'] == method and r['status'] == 'ok'
    ]


def _shown(runs: List[dict], methods: Dict[str, dict]) -> List[str]:
    """The methods with a successful run, in report order (their index is
    their colour in the figures)."""
    return [
        name for name in methods
        if any(r['method'] == name and r['status'] == 'ok' for r in runs)
    ]


def _tables(runs: List[dict], methods: Dict[str, dict]) -> List[str]:
    """One markdown table per metric group (rows: methods with a run)."""
    shown = _shown(runs, methods)
    lines = []
    for group, title in GROUP_TITLES.items():
        keys = [k for k, m in METRICS.items() if m.group == group]
        lines += [
            f'### {title}', '',
            '| method | seeds | ' + ' | '.join(METRICS[k].title
                                               for k in keys) + ' |',
            '|---|---|' + '---|' * len(keys)
        ]
        for name in shown:
            seeds = sum(r['method'] == name and r['status'] == 'ok'
                        for r in runs)
            cells = [
                format_cell(_values(runs, name, k), METRICS[k].digits)
                for k in keys
            ]
            lines.append(f'| {methods[name]["label"]} | {seeds} | ' +
                         ' | '.join(cells) + ' |')
        lines.append('')
    return lines


def _plot_probes(runs: List[dict], methods: Dict[str, dict], path: str) -> str:
    """Bars (mean, sample-std error bars) and seed dots per metric."""
    names = _shown(runs, methods)
    fig, axes = new_figure(2, 4, cell=(4.2, 3.2))
    for ax, key in zip(axes.flat, HEADLINE):
        for i, name in enumerate(names):
            values = [v for v in _values(runs, name, key) if v is not None]
            stats = _stats(values)
            if stats is None:
                continue
            mean, std, _ = stats
            ax.bar(
                i,
                mean,
                color=f'C{i}',
                alpha=0.6,
                yerr=None if math.isnan(std) else std,
                capsize=4)
            ax.plot([i] * len(values), values, 'k.', markersize=5)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([methods[n]['label'] for n in names],
                           rotation=30,
                           ha='right',
                           fontsize=8)
        ax.set_title(METRICS[key].title, fontsize=10)
        ax.grid(axis='y', alpha=0.3)
    return save_figure(fig, path)


def _plot_knn_curves(runs: List[dict], methods: Dict[str, dict],
                     path: str) -> str:
    """kNN top-1 over epochs: a thin line per seed, the seed mean bold."""
    fig, axes = new_figure(1, 1, cell=(6.0, 4.0))
    ax = axes[0, 0]
    for i, name in enumerate(_shown(runs, methods)):
        curves = [
            r['knn_curve'] for r in runs if r['method'] == name
            and r['status'] == 'ok' and r.get('knn_curve')
        ]
        for curve in curves:
            ax.plot(*zip(*curve), color=f'C{i}', alpha=0.35, linewidth=0.8)
        if curves:
            epochs = sorted({e for c in curves for e, _ in c})
            mean = [
                np.mean([dict(c)[e] for c in curves if e in dict(c)])
                for e in epochs
            ]
            ax.plot(
                epochs,
                mean,
                '-o',
                color=f'C{i}',
                markersize=3,
                label=methods[name]['label'])
    ax.set_xlabel('epoch')
    ax.set_ylabel('kNN top-1 (%)')
    ax.set_title('KNNMonitorHook during pre-training')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_report(work_dir: str,
                 runs: List[dict],
                 methods: Dict[str, dict],
                 header: Dict[str, str],
                 notes: Sequence[str] = ()) -> dict:
    """Write ``report.md``, ``results.{json,csv}`` and the two PNGs.

    Args:
        work_dir (str): Output folder.
        runs (list[dict]): Per (method, seed): ``method``, ``seed``,
            ``status`` (``'ok'``, ``'failed'`` or ``'skipped'``),
            ``metrics`` (keys of :data:`METRICS`), ``knn_curve``
            (``[[epoch, top1], ...]``) and, unless ok, ``error``.
        methods (dict[str, dict]): Per method name, in report order:
            ``label``, ``config``, ``available``, ``reason``,
            ``description``.
        header (dict[str, str]): Rows of the header table (command,
            device, versions, data, budget ...); ``command`` is also shown
            as a code block.
        notes (Sequence[str]): Paragraphs added under the tables.

    Returns:
        dict[str, str]: The written files by kind.
    """
    os.makedirs(work_dir, exist_ok=True)
    files = dict(
        report=osp.join(work_dir, 'report.md'),
        json=osp.join(work_dir, 'results.json'),
        csv=osp.join(work_dir, 'results.csv'),
        probes=osp.join(work_dir, 'probes.png'),
        knn_curves=osp.join(work_dir, 'knn_curves.png'))
    _plot_probes(runs, methods, files['probes'])
    _plot_knn_curves(runs, methods, files['knn_curves'])

    lines = [
        '# Pre-training methods compared', '',
        f'Written {datetime.datetime.now().isoformat(timespec="seconds")}'
        ' by `tools/analysis_tools/compare_methods.py`.', '', '```bash',
        header['command'], '```', '', '| | |', '|---|---|'
    ]
    lines += [
        f'| {key} | {value} |' for key, value in header.items()
        if key != 'command'
    ]
    lines.append('')
    lines += _tables(runs, methods)
    lines += list(notes)
    missing = [(m['label'], m['reason']) for m in methods.values()
               if not m['available']]
    problems = [(methods[r['method']]['label'], r['seed'], r['status'],
                 r['error']) for r in runs if r['status'] != 'ok']
    if missing or problems:
        lines += ['', '### Not in the tables', '']
        lines += [
            f'- **{label}**: not available: {reason}'
            for label, reason in missing
        ]
        lines += [
            f'- **{label}**, seed {seed}: {status}: {error}'
            for label, seed, status, error in problems
        ]
    lines += ['', '### Metrics', '']
    lines += [f'- **{m.title}**: {m.description}' for m in METRICS.values()]
    lines += [
        '', '### Figures', '', '![probes](probes.png)', '',
        '![kNN during pre-training](knn_curves.png)', ''
    ]
    with open(files['report'], 'w') as f:
        f.write('\n'.join(lines))
    with open(files['json'], 'w') as f:
        json.dump(dict(header=header, methods=methods, runs=runs), f, indent=1)
    with open(files['csv'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['method', 'seed', 'status', *METRICS])
        for r in runs:
            writer.writerow([r['method'], r['seed'], r['status']] +
                            [r['metrics'].get(k, '') for k in METRICS])
    return files


def report_header(settings: CompareSettings, data: ComparisonData,
                  seeds: Sequence[int], command: str) -> Dict[str, str]:
    """The report's header rows."""
    versions = environment_versions()
    budget = f'{settings.epochs} epochs'
    if settings.minutes:
        budget += f', at most {settings.minutes:g} wall-clock minutes'
    probe = data.probe
    return {
        'command':
        command,
        'device':
        device_description(),
        'scale': ('GPU' if torch.cuda.is_available() else
                  '**CPU scale**: numbers from a CPU-sized run, see the '
                  'budget'),
        'versions':
        ', '.join(f'{k} {v}' for k, v in versions.items()),
        'budget':
        f'{budget} per method (the named ones in their {settings.recipe} '
        f'recipe) at {settings.size} px, batch '
        f'{settings.batch_size or "of each config"}, '
        f'{data.pretrain_count} pre-training images x {settings.repeat}, '
        f'{settings.precision}'
        f'{", channels-last" if settings.channels_last else ""}',
        'labelled probes':
        f'{osp.abspath(settings.data)}: '
        f'{len(probe["train"].classes)} classes, {len(probe["train"])} '
        f'train / {len(probe["val"])} val images at {settings.size} px '
        f'(chance {100 / len(probe["train"].classes):.2f} %)',
        'dense probe': (f'{osp.abspath(settings.dense)} at '
                        f'{settings.dense_size} px'
                        if settings.dense else 'not run (no --dense)'),
        'easy split': (f'{settings.easy_classes} classes spread over the '
                       f'labelled ones, {len(data.easy["train"])} train / '
                       f'{len(data.easy["val"])} val images (chance '
                       f'{100 / settings.easy_classes:.2f} %)'
                       if data.easy else 'none (no --easy-classes)'),
        'region statistics':
        f'{len(data.diversity_paths)} images at '
        f'{settings.dense_size} px',
        'seeds':
        ', '.join(map(str, seeds)),
    }


def report_notes(runs: List[dict], methods: Dict[str, dict],
                 settings: CompareSettings) -> List[str]:
    """Paragraphs under the tables: the dense baseline, the teacher."""
    notes = []
    baselines = [
        r['detail']['dense']['baseline_miou'] for r in runs
        if r['status'] == 'ok' and 'dense' in r['detail']
    ]
    if baselines:
        notes.append(f'Dense probe: predicting background everywhere scores '
                     f'{baselines[0]:.2f} % mIoU on the val split.')
    if any(m['available'] and m['method'].teacher for m in methods.values()):
        notes.append('E-DIY (BYOL teacher): ' + (
            f'teacher {settings.teacher}.' if settings.teacher else
            'the teacher is the BYOL run of the same seed, so its total '
            'pre-training is the BYOL budget plus its own.'))
    return [line for note in notes for line in (note, '')]


def report_entry(method: dict) -> dict:
    """A :func:`resolve_methods` entry without the :class:`Method`."""
    return {k: v for k, v in method.items() if k != 'method'}
