"""Measuring a config's training data pipeline: images per second per core
and per worker, the stock path beside the decode and the device path.

The library behind ``tools/analysis_tools/benchmark_pipeline.py``. From a
config whose pipeline starts with :class:`~ediy_mm.datasets.
DecodeMultiView`, :func:`pipeline_variants` makes the stages compared:

- ``decode cv2``: mmcv's ``LoadImageFromFile`` alone (the stock decode);
- ``decode PIL``: PIL's full-size decode alone (the device path's);
- ``stock``: mmpretrain's ``LoadImageFromFile`` + ``MultiView`` with the
  whole view pipelines, then ``PackInputs`` (``photometric='cpu'``);
- ``device path``: the config's pipeline (decode, crop, flip; JPEG draft);
- ``device path, no draft``: the same, decoded at full size.

:func:`time_pipelines` runs them on the same images in interleaved rounds
(one batch of every stage per round, so that a change of the machine's
load hits all alike), in this process, and counts both the process's CPU
time (images per CPU-second: per core) and the wall time (images per
second of one worker). The stages that end in ``PackInputs`` also run the
config's data preprocessor on their collated batch, as the training step
does (on the CPU here: the device side's cost per augmented sample).
"""
import copy
import statistics
import time
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmpretrain.registry import MODELS
from PIL import Image

__all__ = [
    'pipeline_variants', 'build_preprocessor', 'time_pipelines', 'format_table'
]


def _decode_pil(results: dict) -> dict:
    """PIL's full-size RGB decode of ``results['img_path']``."""
    with Image.open(results['img_path']) as image:
        results['img'] = np.asarray(image.convert('RGB'))
    return results


def pipeline_variants(cfg: Config) -> Dict[str, List[Any]]:
    """The stages compared, from a config's training pipeline.

    Args:
        cfg (Config): A training config whose
            ``train_dataloader.dataset.pipeline`` starts with
            ``DecodeMultiView``.

    Returns:
        dict[str, list]: Transform configs (or callables) per stage, in
        the order of the module docstring.
    """
    pipeline = cfg.train_dataloader.dataset.pipeline
    if not pipeline or pipeline[0].get('type') != 'DecodeMultiView':
        raise ValueError(
            'the benchmark compares the stages of a pipeline that starts '
            'with DecodeMultiView; this config starts with '
            f'{pipeline[0].get("type") if pipeline else None}')

    def variant(**changes):
        steps = copy.deepcopy(list(pipeline))
        steps[0].update(changes)
        return steps

    return {
        'decode cv2': [dict(type='LoadImageFromFile')],
        'decode PIL': [_decode_pil],
        'stock': variant(photometric='cpu'),
        'device path': variant(photometric='device', draft=True),
        'device path, no draft': variant(photometric='device', draft=False),
    }


def build_preprocessor(cfg: Config):
    """The config's data preprocessor (``model.data_preprocessor``, else
    the top-level ``data_preprocessor``), on the CPU."""
    preprocessor = cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor')
    return MODELS.build(preprocessor)


def _cpu_and_wall(fn: Callable[[], Any]):
    """``fn()``, its process CPU seconds and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def time_pipelines(stages: Dict[str, List[Any]],
                   paths: Sequence[str],
                   preprocessor=None,
                   batch_size: int = 16,
                   rounds: int = 8,
                   warmup: int = 1) -> Dict[str, dict]:
    """Time the stages on the same images, interleaved.

    Each round takes the next ``batch_size`` images (cycling over
    ``paths``) and runs every stage on each of them; stages ending in
    ``PackInputs`` then collate the batch and run ``preprocessor`` on it in
    training mode.

    Args:
        stages (dict[str, list]): From :func:`pipeline_variants`.
        paths (Sequence[str]): Image files.
        preprocessor (nn.Module, optional): The data preprocessor.
        batch_size (int): Images per round. Defaults to 16.
        rounds (int): Timed rounds. Defaults to 8.
        warmup (int): Rounds run first and not counted. Defaults to 1.

    Returns:
        dict[str, dict]: Per stage: ``images``, ``cpu_s`` and ``wall_s``
        of the data side, ``per_core`` (images per CPU-second) and
        ``per_worker`` (images per wall second), the per-round
        ``round_per_core``, and for packed stages ``device_cpu_s``,
        ``device_ms_per_sample``, ``end_to_end_ms_per_sample`` (CPU time:
        data side + collate + preprocessor, per image of the batch).
    """
    composed = {name: Compose(steps) for name, steps in stages.items()}
    totals = {
        name:
        dict(
            images=0, cpu_s=0., wall_s=0., device_cpu_s=0., round_per_core=[])
        for name in stages
    }
    for index in range(warmup + rounds):
        start = index * batch_size
        batch_paths = [
            paths[(start + i) % len(paths)] for i in range(batch_size)
        ]
        for name, pipeline in composed.items():
            samples, cpu, wall = _cpu_and_wall(lambda: [
                pipeline(dict(img_path=path, sample_idx=i))
                for i, path in enumerate(batch_paths)
            ])
            device = 0.
            if preprocessor is not None and 'inputs' in samples[0]:
                _, device, _ = _cpu_and_wall(
                    lambda: preprocessor(default_collate(samples), True))
            if index < warmup:
                continue
            total = totals[name]
            total['images'] += batch_size
            total['cpu_s'] += cpu
            total['wall_s'] += wall
            total['device_cpu_s'] += device
            total['round_per_core'].append(batch_size / cpu)
    report = {}
    for name, total in totals.items():
        entry = dict(
            total,
            per_core=total['images'] / total['cpu_s'],
            per_worker=total['images'] / total['wall_s'],
            median_round_per_core=statistics.median(total['round_per_core']))
        if total['device_cpu_s']:
            entry['device_ms_per_sample'] = (1e3 * total['device_cpu_s'] /
                                             total['images'])
            entry['end_to_end_ms_per_sample'] = 1e3 * (
                total['cpu_s'] + total['device_cpu_s']) / total['images']
        else:
            entry.pop('device_cpu_s')
        report[name] = entry
    return report


def format_table(report: Dict[str, dict], reference: str = 'stock') -> str:
    """A markdown table of :func:`time_pipelines`' report, with each
    stage's per-core rate as a multiple of ``reference``'s."""
    ref = report[reference]['per_core']
    lines = [
        '| stage | images/s per core | x stock | images/s per worker '
        '| device side ms/sample | end-to-end ms/sample |',
        '|---|---|---|---|---|---|'
    ]
    for name, entry in report.items():
        device = entry.get('device_ms_per_sample')
        total = entry.get('end_to_end_ms_per_sample')
        lines.append(
            f"| {name} | {entry['per_core']:.0f} | "
            f"{entry['per_core'] / ref:.2f} | {entry['per_worker']:.0f} | "
            f"{'' if device is None else f'{device:.1f}'} | "
            f"{'' if total is None else f'{total:.1f}'} |")
    return '\n'.join(lines)
