"""The run configs of a comparison: which methods can run
(:func:`resolve_methods`) and each method's config with the comparison's
budget, data and hooks (:func:`build_run_config`)."""
import dataclasses
import glob
import math
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.registry import DefaultScope

from ...datasets.univip_proposals import require_selective_search
from .settings import (KNN_K, KNN_T, METHODS, RECIPES, ROOT, CompareSettings,
                       Method)

__all__ = [
    'VIEW_SIZES', 'build_run_config', 'find_config', 'resolve_methods',
    'view_sizes'
]


def find_config(pattern: str) -> Optional[str]:
    """The first config matching ``pattern`` (relative to :data:`ROOT`)."""
    found = sorted(glob.glob(osp.join(ROOT, pattern)))
    return found[0] if found else None


def inspect_config(method: Method, path: str) -> Tuple[str, bool]:
    """Why the config at ``path`` cannot serve the comparison ('' if it
    can), and whether its data set reads a proposal file."""
    from mmpretrain.registry import MODELS, TRANSFORMS
    rel = osp.relpath(path, ROOT)
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # any config error makes the method unusable
        return f'{rel} cannot be read: {type(err).__name__}: {err}', False
    model_type = cfg.get('model', {}).get('type')
    if MODELS.get(model_type) is None:
        return (f'the model type {model_type!r} of {rel} is not registered '
                'in mmpretrain', False)
    pipeline = cfg.get('train_dataloader', {}).get('dataset',
                                                   {}).get('pipeline', [])
    try:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            for transform in pipeline:
                TRANSFORMS.build(transform)
    except Exception as err:  # an unregistered or misconfigured transform
        return (f'the train pipeline of {rel} cannot be built: '
                f'{type(err).__name__}: {err}'.splitlines()[0], False)
    if not view_sizes(pipeline):
        known = ', '.join(f'{t}.{k}' for t, keys in VIEW_SIZES.items()
                          for k in keys)
        return (f'the train pipeline of {rel} sets no view size the '
                f'comparison knows ({known}), so it cannot set its '
                'resolution', False)
    proposals = 'proposal_file' in cfg.train_dataloader.dataset
    if proposals:
        try:
            require_selective_search()
        except ImportError as err:
            return f'{rel} needs proposals: {err}', True
    if method.teacher and 'checkpoint' not in (cfg.model.get('teacher') or {}):
        return f'{rel} has no model.teacher.checkpoint to set', False
    return '', proposals


def resolve_methods(specs: Sequence[str] = (), recipe: str = 'cpu') -> Dict[
        str, dict]:
    """The methods to compare, with whether each can run and why not.

    Args:
        specs (Sequence[str]): ``NAME`` (of :data:`METHODS`) or
            ``NAME=CONFIG`` (a config of the user's; for a known name it
            replaces that method's config). Empty: every method of
            :data:`METHODS`.
        recipe (str): The configs of the named methods
            (:data:`~.settings.RECIPES`). Defaults to ``'cpu'``.

    Returns:
        dict[str, dict]: Per name, in order: ``method`` (:class:`Method`),
        ``label``, ``description``, ``config`` (absolute path or None),
        ``available``, ``reason`` (why not) and ``needs_proposals`` (its
        data set reads a proposal file: UniVIP).
    """
    resolved: Dict[str, dict] = {}
    for spec in specs or list(METHODS):
        name, sep, config = spec.partition('=')
        if name in resolved:
            raise ValueError(f'method {name!r} is listed twice')
        if sep:
            if not osp.isfile(config):
                raise FileNotFoundError(
                    f'config {config!r} of method {name!r} does not exist')
            method = dataclasses.replace(
                METHODS.get(name,
                            Method(name, name, None, f'user config {config}')),
                config=osp.abspath(config))
        elif name in METHODS:
            method = dataclasses.replace(
                METHODS[name],
                config=RECIPES[recipe].get(name, METHODS[name].config))
        else:
            raise ValueError(
                f'unknown method {name!r}; known: {", ".join(METHODS)}, or '
                'give NAME=CONFIG for a config of your own')
        path, reason, proposals = None, '', False
        if method.config is not None:
            path = find_config(method.config)
            reason, proposals = (
                inspect_config(method, path) if path else
                (f'no config {method.config} in this checkout yet', False))
        resolved[name] = dict(
            method=method,
            label=method.label,
            description=method.description,
            config=path,
            available=not reason,
            reason=reason,
            needs_proposals=proposals)
    return resolved


# -------------------------------------------------------------- run config
#: The options that set a view's side, by transform type: the comparison
#: scales them all so that the largest becomes ``--size``.
VIEW_SIZES = {
    'RandomResizedCrop': ('scale', ),
    'UniVIPViews': ('scene_size', 'instance_size'),
}


def view_sizes(node) -> List[int]:
    """The view sides (:data:`VIEW_SIZES`) set anywhere in a pipeline."""
    if isinstance(node, (list, tuple)):
        return [s for item in node for s in view_sizes(item)]
    if not isinstance(node, dict):
        return []
    own = [
        node[key] for key in VIEW_SIZES.get(node.get('type'), ())
        if isinstance(node.get(key), int)
    ]
    return own + view_sizes(list(node.values()))


def rescale_views(node, factor: float):
    """A copy of a pipeline with every view side times ``factor``
    (rounded)."""
    if isinstance(node, (list, tuple)):
        return [rescale_views(item, factor) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: rescale_views(v, factor) for k, v in node.items()}
    for key in VIEW_SIZES.get(out.get('type'), ()):
        if isinstance(out.get(key), int):
            out[key] = round(out[key] * factor)
    return out


def stretch_schedule(cfg: Config, epochs: int, config_name: str) -> None:
    """Stretch the epoch-based schedulers that end at the config's last
    epoch to end at ``epochs``; earlier ones (warm-up) stay as they are."""
    old = cfg.train_cfg.max_epochs
    schedulers = cfg.get('param_scheduler') or []
    for scheduler in ([schedulers]
                      if isinstance(schedulers, dict) else schedulers):
        if not scheduler.get('by_epoch', True):
            raise ValueError(f'{config_name}: the scheduler '
                             f'{scheduler["type"]} is iteration-based; the '
                             'comparison sets epochs')
        begin, end = scheduler.get('begin', 0), scheduler.get('end', math.inf)
        stretched = end >= old
        needed = begin + 1 if stretched else end
        if epochs < needed:
            raise ValueError(
                f'{config_name}: its {scheduler["type"]} runs from epoch '
                f'{begin} to {end}; give --epochs >= {needed}')
        if stretched:
            scheduler['end'] = epochs
            if 'T_max' in scheduler:
                scheduler['T_max'] = epochs - begin
    cfg.train_cfg.max_epochs = epochs


def _set_precision(cfg: Config, settings: CompareSettings) -> None:
    """bf16 autocast (mmengine's ``AmpOptimWrapper``) and channels-last for
    the trained networks and E-DIY's frozen teacher."""
    if settings.precision == 'bf16':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
    teacher = cfg.model.get('teacher')
    if teacher:
        if settings.precision == 'bf16':
            teacher.dtype = 'bfloat16'
        teacher.channels_last = settings.channels_last


def build_run_config(config: str,
                     settings: CompareSettings,
                     seed: int,
                     work_dir: str,
                     pretrain_dir: str,
                     monitor_dirs: Optional[Dict[str, str]],
                     teacher: Optional[str],
                     proposal_file: Optional[str] = None) -> Config:
    """A method's config with the comparison's budget, data and hooks.

    Args:
        config (str): The method's config.
        settings (CompareSettings): The comparison.
        seed (int): ``randomness.seed``.
        work_dir (str): The run's work directory (resumed when it holds a
            checkpoint).
        pretrain_dir (str): Folder of the pre-training images.
        monitor_dirs (dict[str, str], optional): ``train`` / ``val``
            labelled folders of the kNN monitor; None: no monitor.
        teacher (str, optional): ``model.teacher.checkpoint``.
        proposal_file (str, optional): Proposals of the pre-training images
            for a data set that reads them (UniVIP's).

    Returns:
        Config: Ready for ``Runner.from_cfg``.
    """
    cfg = Config.fromfile(config)
    name = osp.relpath(config, ROOT)
    cfg.work_dir = work_dir
    cfg.resume, cfg.load_from = True, None
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    loader = cfg.train_dataloader
    loader.dataset.data_root = pretrain_dir
    if 'repeat' in loader.dataset:
        loader.dataset.repeat = settings.repeat
    if 'proposal_file' in loader.dataset:
        loader.dataset.proposal_file = proposal_file
    loader.num_workers = settings.workers
    loader.persistent_workers = False
    loader.drop_last = True
    if settings.batch_size:
        if 'auto_scale_lr' not in cfg:
            raise ValueError(f'{name} has no auto_scale_lr.base_batch_size;'
                             ' --batch-size cannot scale its learning rate')
        loader.batch_size = settings.batch_size
        cfg.auto_scale_lr.enable = True
    pipeline = loader.dataset.pipeline
    loader.dataset.pipeline = rescale_views(
        pipeline, settings.size / max(view_sizes(pipeline)))
    stretch_schedule(cfg, settings.epochs, name)
    if settings.minutes:
        cfg.train_cfg.type = 'StoppableEpochBasedTrainLoop'
    imports = dict(cfg.get('custom_imports') or {})
    modules = list(imports.get('imports', []))
    modules += [
        m for m in ('ediy_mm', 'ediy_mm.analysis.compare.training')
        if m not in modules
    ]
    imports['imports'] = modules
    cfg.custom_imports = dict(imports, allow_failed_imports=False)
    hooks = [dict(h) for h in cfg.get('custom_hooks', [])]
    hooks.append(dict(type='TrainingClockHook', minutes=settings.minutes))
    if monitor_dirs and settings.monitor_interval:
        hooks.append(
            dict(
                type='KNNMonitorHook',
                train_root=monitor_dirs['train'],
                val_root=monitor_dirs['val'],
                interval=settings.monitor_interval,
                k=KNN_K,
                temperature=KNN_T,
                image_size=settings.size,
                batch_size=128,
                num_workers=settings.workers,
                before_train=True))
    if settings.channels_last:
        hooks.append(dict(type='ChannelsLastHook'))
    cfg.custom_hooks = hooks
    _set_precision(cfg, settings)
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.checkpoint.max_keep_ckpts = 2
    cfg.default_hooks.logger.interval = 10
    if teacher is not None:
        cfg.model.teacher.checkpoint = teacher
    cfg.experiment_name = (f'{osp.basename(osp.dirname(work_dir))}_'
                           f'{osp.basename(work_dir)}_{time.time_ns()}')
    return cfg
