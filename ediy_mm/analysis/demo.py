"""`make demo`: pre-train a method on a CPU on real photos through
``tools/train.py`` (the real mmengine Runner), then draw what it learnt.

Each method is a list of :class:`Stage` s (configs of ``configs/`` trained
one after the other; E-DIY's teacher is the checkpoint of an earlier BYOL
stage) and a list of figures. Progress and ETA are mmengine's own log lines:
the training runs print straight to the terminal, and to the log file
mmengine writes in each stage's work directory.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

__all__ = ['METHODS', 'Stage', 'readable_images', 'run_demo', 'train_stage']

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: Photos shown in the saliency grid when they are all there.
SHOWCASE = ('astronaut', 'chelsea', 'coffee', 'rocket')


@dataclass(frozen=True)
class Stage:
    """One pre-training run of a demo.

    Attributes:
        name (str): Key of the run (its work sub-directory).
        label (str): Name in figures and summaries.
        config (str): Config path relative to ``configs/``.
        teacher (str, optional): ``name`` of the earlier stage whose
            checkpoint is this stage's ``model.teacher.checkpoint``.
        knn (bool): Monitor kNN accuracy on crops of the photos.
    """

    name: str
    label: str
    config: str
    teacher: Optional[str] = None
    knn: bool = True


_BYOL = Stage('teacher', 'BYOL teacher',
              'ediy/byol_resnet18_cpu-128px_photos.py')
#: File names of the extracted backbones, by stage name (default: the
#: name).
_BACKBONE_NAMES = {'teacher': 'byol_teacher'}
#: The stages of each ``--method`` of ``tools/demo.py``.
METHODS: Dict[str, List[Stage]] = {
    'ediy': [
        _BYOL,
        Stage(
            'ediy',
            'E-DIY',
            'ediy/ediy_resnet18_cpu-128px_photos.py',
            teacher='teacher')
    ],
    'mosrep':
    [Stage('mosrep', 'MosRep', 'mosrep/mosrep_resnet18_cpu-64px_photos.py')],
    'mosrep-byol': [
        Stage('mosrep-byol', 'MosRep on BYOL',
              'mosrep/mosrep-byol_resnet18_cpu-128px_photos.py')
    ],
    'ediy-mosaic': [
        _BYOL,
        Stage(
            'ediy-mosaic',
            'E-DIY + mosaic',
            'mosrep/ediy-mosaic_resnet18_cpu-128px_photos.py',
            teacher='teacher')
    ],
    'univip': [
        Stage(
            'univip',
            'UniVIP',
            'univip/univip_resnet18_cpu-64px_photos.py',
            knn=False)
    ],
}


def train_stage(config: str, work_dir: str, options: Sequence[str]) -> str:
    """Run ``tools/train.py config --work-dir work_dir --cfg-options
    options``, its output going to the terminal; return the last
    checkpoint.

    Args:
        config (str): Config file.
        work_dir (str): Work directory.
        options (list[str]): ``key=value`` overrides.

    Returns:
        str: Path of the last checkpoint.
    """
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--cfg-options', *options
    ]
    print('$', ' '.join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode:
        sys.exit(f'training failed; its log is in {work_dir}/')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _with_hooks(config: str, hooks: List[dict], path: str) -> str:
    """A config inheriting ``config`` with ``hooks`` appended to its
    ``custom_hooks``; return its path."""
    from mmengine.config import Config
    inherited = [
        h.to_dict() for h in Config.fromfile(config).get('custom_hooks', [])
    ]
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f'_base_ = [{config!r}]\n'
                f'custom_hooks = {inherited + hooks!r}\n')
    return path


def _knn_hook(paths: List[str], work_dir: str, seed: int) -> dict:
    """KNNMonitorHook classifying random crops of the photos by photo."""
    from .images import write_instance_crops
    root = osp.join(work_dir, 'knn_crops')
    shutil.rmtree(root, ignore_errors=True)  # no class of an old run
    dirs = write_instance_crops(
        paths[:20], root, crops=dict(train=8, val=4), seed=seed)
    return dict(
        type='KNNMonitorHook',
        train_root=osp.abspath(dirs['train']),
        val_root=osp.abspath(dirs['val']),
        image_size=128,
        batch_size=32,
        num_workers=0,
        before_train=True)


def _univip_proposals(root: str, work_dir: str) -> str:
    """Selective-search proposals of the photos (UniVIP's offline step)."""
    from ..datasets import list_images
    from ..datasets.univip_boxes import BoxRules
    from ..datasets.univip_proposals import compute_proposals
    path = osp.join(work_dir, 'proposals.json')
    summary = compute_proposals(
        root,
        list_images(root, relative=True),
        path,
        BoxRules(),
        max_side=256,
        workers=min(2,
                    os.cpu_count() or 1),
        progress=False)
    print(f'[demo] {summary["boxes"]} proposals in {path}', flush=True)
    return path


def readable_images(paths: List[str], skip_unreadable: bool) -> List[str]:
    """The images whose header PIL can read; an unreadable one raises, or
    (``skip_unreadable``) is left out with a line naming it.

    Args:
        paths (list[str]): Image files.
        skip_unreadable (bool): Leave unreadable files out instead of
            raising.

    Returns:
        list[str]: The readable files, in order.

    Raises:
        CorruptImageError: Naming the unreadable files, unless
            ``skip_unreadable``.
        FileNotFoundError: If no file is readable.
    """
    from ..datasets import CorruptImageError, image_header_error
    errors = {path: image_header_error(path) for path in paths}
    bad = {path: err for path, err in errors.items() if err is not None}
    if bad and not skip_unreadable:
        names = ', '.join(f'{path} ({type(err).__name__})'
                          for path, err in list(bad.items())[:5])
        raise CorruptImageError(
            f'{len(bad)} of {len(paths)} images are not readable: {names}'
            f'{" ..." if len(bad) > 5 else ""}. Remove them, or leave them '
            'out with skip_unreadable=True (tools/demo.py --skip-unreadable).')
    for path, err in bad.items():
        print(
            f'[demo] skipping unreadable image {path} '
            f'({type(err).__name__}: {err})',
            flush=True)
    readable = [path for path in paths if path not in bad]
    if not readable:
        raise FileNotFoundError('no readable image among ' +
                                ', '.join(paths[:5]))
    return readable


def _showcase(paths: List[str]) -> List[str]:
    """The photos of :data:`SHOWCASE` when all are there, else the first
    four images."""
    by_name = {osp.splitext(osp.basename(p))[0]: p for p in paths}
    if all(name in by_name for name in SHOWCASE):
        return [by_name[name] for name in SHOWCASE]
    return paths[:4]


def _extract(checkpoint: str, work_dir: str, name: str) -> str:
    """Save the online backbone of ``checkpoint`` alone (as
    ``tools/model_converters/extract_backbone.py``); return the file."""
    import torch

    from ..utils.convert import extract_backbone, load_state_dict
    path = osp.join(work_dir, 'checkpoints', f'{name}_backbone.pth')
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(extract_backbone(load_state_dict(checkpoint)).state_dict, path)
    return path


def run_demo(method: str,
             work_dir: str,
             images: Optional[str] = None,
             epochs: int = 2,
             repeat: int = 16,
             size: int = 224,
             seed: int = 0,
             skip_unreadable: bool = False) -> dict:
    """Pre-train ``method`` on the photos and write its figures.

    Writes to ``work_dir``: every stage's work directory (checkpoints,
    logs), ``checkpoints/*_backbone.pth``, ``loss_curves.png`` and, by
    method, ``region_matches.png`` (the regions the teacher picks for R-DEM
    and R-IEM), ``saliency.png``, ``region_diversity.*`` (E-DIY),
    ``mosaic_views.png`` (the mosaic methods) and ``univip_views.png``.

    Args:
        method (str): A key of :data:`METHODS`.
        work_dir (str): Output directory.
        images (str, optional): Image folder (default: scikit-image's
            photos).
        epochs (int): Epochs of each stage (>= 2: one warm-up epoch, then
            cosine).
        repeat (int): Random crops drawn from each image per epoch.
        size (int): View side of the figures.
        seed (int): Seed of the runs and the figures.
        skip_unreadable (bool): Leave out, with a line naming each, the
            files of ``images`` that cannot be read, in the figures and in
            training (``PhotoFolderDataset``'s ``skip_unreadable``; UniVIP's
            proposal step skips them by itself). Defaults to False: such a
            file stops the demo with a
            :class:`~ediy_mm.datasets.CorruptImageError` naming it, before
            any training.

    Returns:
        dict: ``checkpoints``, ``backbones``, ``files`` and ``curves``
        (last logged values), and the method's own figure results.
    """
    from ..datasets.photo_folder import DEFAULT_ROOT
    from . import (list_images, load_backbone, plot_training_curves,
                   region_diversity_report, region_match_figure, saliency_grid)
    if method not in METHODS:
        raise ValueError(f'method must be one of {sorted(METHODS)}, got '
                         f'{method!r}')
    if epochs < 2:
        raise ValueError('epochs must be >= 2 (1 warm-up epoch + cosine)')
    root = osp.abspath(osp.expanduser(images or DEFAULT_ROOT))
    paths = readable_images(list_images(images), skip_unreadable)
    print(
        f'[demo] {method} on {len(paths)} photos from '
        f'{images or "scikit-image"}, {epochs} epochs per stage; writing '
        f'to {work_dir}',
        flush=True)
    options = [
        f'train_cfg.max_epochs={epochs}',
        # the cosine phase of the CPU configs spans epochs 1 .. max_epochs
        f'param_scheduler.1.T_max={epochs - 1}',
        f'param_scheduler.1.end={epochs}',
        f'train_dataloader.dataset.repeat={repeat}',
        f'train_dataloader.dataset.data_root={root}',
        f'randomness.seed={seed}',
    ]
    if method == 'univip':
        options.append('train_dataloader.dataset.proposal_file=' +
                       _univip_proposals(root, work_dir))
    elif skip_unreadable:
        options.append('train_dataloader.dataset.skip_unreadable=True')
    knn = _knn_hook(paths, work_dir, seed)
    checkpoints, runs = {}, {}
    for stage in METHODS[method]:
        config = osp.join(ROOT, 'configs', stage.config)
        if stage.knn:
            config = _with_hooks(
                config, [knn], osp.join(work_dir, 'configs',
                                        f'{stage.name}.py'))
        extra = ([f'model.teacher.checkpoint={checkpoints[stage.teacher]}']
                 if stage.teacher else [])
        runs[stage.label] = osp.join(work_dir, stage.name)
        print(
            f'[demo] stage {len(runs)}/{len(METHODS[method])}: '
            f'{stage.label}',
            flush=True)
        checkpoints[stage.name] = train_stage(config, runs[stage.label],
                                              options + extra)

    files = {'loss curves': osp.join(work_dir, 'loss_curves.png')}
    stages = METHODS[method]
    out = dict(
        checkpoints={s.label: checkpoints[s.name]
                     for s in stages},
        files=files)
    out['curves'] = plot_training_curves(runs, files['loss curves'])
    out['backbones'] = {
        s.label:
        _extract(checkpoints[s.name], work_dir,
                 _BACKBONE_NAMES.get(s.name, s.name))
        for s in stages
    }
    if method == 'univip':
        from .univip_views import univip_views_figure
        files['UniVIP views'] = osp.join(work_dir, 'univip_views.png')
        univip_views_figure(
            paths[:4], files['UniVIP views'], num_instances=2, seed=seed)
        return out
    models = {
        label: load_backbone(path)
        for label, path in out['backbones'].items()
    }
    files['saliency'] = osp.join(work_dir, 'saliency.png')
    out['areas'] = saliency_grid(models, _showcase(paths), files['saliency'],
                                 size)
    if method in ('mosrep', 'mosrep-byol', 'ediy-mosaic'):
        from .mosaic_views import mosaic_views_figure
        files['mosaics of a batch'] = osp.join(work_dir, 'mosaic_views.png')
        mosaic_views_figure(
            osp.join(ROOT, 'configs', METHODS[method][-1].config),
            files['mosaics of a batch'],
            data_root=images,
            seed=seed)
    if method == 'ediy':
        files['teacher region matches'] = osp.join(work_dir,
                                                   'region_matches.png')
        out['matches'] = region_match_figure(
            models['BYOL teacher'],
            _showcase(paths)[0],
            files['teacher region matches'],
            size=size,
            seed=seed)
        out['report'] = region_diversity_report(models, paths[:16], work_dir,
                                                size, seed)
        files['region diversity table'] = out['report']['files'][0]
    return out
