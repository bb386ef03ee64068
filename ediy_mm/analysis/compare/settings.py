"""Settings of a method comparison: the known methods and the options that
decide a run's result (:class:`CompareSettings`)."""
import dataclasses
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

__all__ = [
    'KNN_K', 'KNN_T', 'METHODS', 'PRECISIONS', 'PRESETS', 'RECIPES', 'ROOT',
    'TEACHER_METHOD', 'TRAINING_SETTINGS', 'CompareSettings', 'Method',
    'Preset', 'option_flag'
]

#: The repository root (configs are looked up below it).
ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
#: kNN protocol of the issue and of the earlier random-init anchor.
KNN_K, KNN_T = 20, 0.07


@dataclass(frozen=True)
class Method:
    """A pre-training method of the comparison.

    Attributes:
        name (str): Command-line name.
        label (str): Name in the report.
        config (str, optional): Config path relative to the repository
            (a glob pattern picks the first match), or absolute. None: no
            pre-training (the random-initialisation anchor).
        description (str): One line for the report.
        teacher (bool): Needs ``model.teacher.checkpoint``: the BYOL run of
            the same comparison and seed unless ``--teacher`` is given.
        cost (float): Step time relative to BYOL, for the first ETA only.
    """

    name: str
    label: str
    config: Optional[str]
    description: str
    teacher: bool = False
    cost: float = 1.0


#: The methods known by name, in report order.
METHODS: Dict[str, Method] = {
    m.name: m
    for m in (
        Method('random-init', 'random init', None,
               'the backbone as initialised, no pre-training (anchor)',
               cost=0),
        Method('byol', 'BYOL',
               'configs/ediy/byol_resnet18_cpu-128px_photos.py',
               "mmpretrain's BYOL"),
        Method('ediy', 'E-DIY (BYOL teacher)',
               'configs/ediy/ediy_resnet18_cpu-128px_photos.py',
               'E-DIY, regions chosen by a frozen BYOL teacher (the paper)',
               teacher=True, cost=1.25),
        Method('ediy-teacherfree', 'E-DIY teacher-free',
               'configs/compare/ediy-teacherfree_resnet18_cpu-128px_photos.py',
               "E-DIY, regions chosen by the momentum target's own maps",
               cost=1.1),
        Method('mosrep', 'MosRep', 'configs/mosrep/mosrep_resnet18_cpu*.py',
               'MosRep: mosaic representation learning', cost=1.3),
        Method('univip', 'UniVIP', 'configs/univip/univip_resnet18_cpu*.py',
               'UniVIP: scene, instance and proposal-level learning',
               cost=1.5),
    )
}  # yapf: disable
#: The method whose run is E-DIY's teacher.
TEACHER_METHOD = 'byol'
#: The configs of the named methods by recipe (``--recipe``): ``cpu``, the
#: CPU-sized ImageNet recipe of :data:`METHODS`; ``small-image``, the
#: small-image recipe (CIFAR stem, 4 x 4 regions at 64 px, no blur, LARS
#: eta 0.02: ``configs/_base_/small-image_64px.py``, docs/study.md).
RECIPES: Dict[str, Dict[str, str]] = {
    'cpu': {
        name: m.config
        for name, m in METHODS.items() if m.config
    },
    'small-image': {
        'byol': 'configs/ediy/byol_resnet18-cifarstem_tinyin-64px.py',
        'ediy': 'configs/ediy/ediy_resnet18-cifarstem_tinyin-64px.py',
        'ediy-teacherfree':
        'configs/compare/ediy-teacherfree_resnet18-cifarstem_tinyin-64px.py',
        'mosrep': 'configs/mosrep/mosrep_resnet18-cifarstem_tinyin-64px.py',
        'univip': 'configs/univip/univip_resnet18-cifarstem_tinyin-64px.py',
    },
}
#: ``--precision`` choices: the training's autocast dtype (``bf16``: mmengine's
#: ``AmpOptimWrapper`` on CUDA).
PRECISIONS = ('fp32', 'bf16')

#: The settings that decide what is pre-trained (with the seed and method).
TRAINING_SETTINGS = ('data', 'pretrain_images', 'pretrain_limit',
                     'val_fraction', 'size', 'epochs', 'minutes', 'batch_size',
                     'repeat', 'teacher', 'monitor_per_class',
                     'monitor_interval', 'easy_classes', 'recipe', 'precision',
                     'channels_last')


@dataclass
class CompareSettings:
    """Everything that decides a run's result (seeds and methods aside).

    A work directory keeps the :meth:`training` settings of its comparison;
    starting it again with others is refused, so that the tables never mix
    budgets. Each evaluation keeps the :meth:`evaluation` settings it was
    made with; with other probe settings the runs are evaluated again
    (their training is kept).

    Attributes:
        data (str): Labelled images, ``ROOT/{train,val}/CLASS/image`` or
            ``ROOT/CLASS/image`` (split by ``val_fraction``).
        pretrain_images (str, optional): Pre-training images (any layout,
            no labels). Defaults to the labelled train split.
        pretrain_limit (int, optional): Pre-train on this many of them
            (a seeded random subset).
        val_fraction (float): Val share of each class for ``ROOT/CLASS``.
        probe_train_per_class (int, optional): kNN bank / linear train
            images per class (all when None).
        probe_val_per_class (int, optional): Probe val images per class.
        monitor_per_class (int): Images per class of each split for the kNN
            monitor during training.
        monitor_interval (int): Monitor every N epochs; 0: no monitor.
        size (int): Probe image side and pre-training crop side (pixels):
            the largest view of each config (:data:`VIEW_SIZES`) becomes
            ``size``, its smaller views keep their ratio to it.
        epochs (int): Epochs of every method; their schedules are
            stretched to it.
        minutes (float, optional): Wall-clock budget of each training run.
        batch_size (int, optional): Overrides the configs' batch (the
            learning rate follows linearly, ``auto_scale_lr``).
        repeat (int): Times each pre-training image is listed per epoch.
        workers (int): Data loader workers.
        dense (str, optional): COCO-style folder for the dense probe
            (``annotations/instances_{train,val}*.json`` and
            ``{train,val}*/`` images).
        dense_size (int): Image side of the dense probe and the region
            statistics.
        dense_limit (int, optional): Dense probe images per split.
        diversity_images (int): Images for the region statistics.
        linear_weight_decay (float, optional): L2 strength of the linear
            probe; None: chosen on held-out train images.
        dense_weight_decay (float, optional): Same for the dense probe.
        teacher (str, optional): E-DIY's teacher checkpoint (default: the
            BYOL run of the comparison).
        easy_classes (int, optional): Also probe an easy split: this many
            classes spread evenly over the sorted classes, all their
            images (the kNN monitor uses it too). None: no easy split.
        recipe (str): The configs of the named methods (:data:`RECIPES`).
        precision (str): ``fp32``, or ``bf16`` autocast (CUDA only).
        channels_last (bool): Train in the channels-last memory format.
    """

    data: str
    pretrain_images: Optional[str] = None
    pretrain_limit: Optional[int] = None
    val_fraction: float = 0.2
    probe_train_per_class: Optional[int] = None
    probe_val_per_class: Optional[int] = None
    monitor_per_class: int = 20
    monitor_interval: int = 1
    size: int = 128
    epochs: int = 10
    minutes: Optional[float] = None
    batch_size: Optional[int] = None
    repeat: int = 1
    workers: int = 2
    dense: Optional[str] = None
    dense_size: int = 224
    dense_limit: Optional[int] = None
    diversity_images: int = 64
    linear_weight_decay: Optional[float] = None
    dense_weight_decay: Optional[float] = None
    teacher: Optional[str] = None
    easy_classes: Optional[int] = None
    recipe: str = 'cpu'
    precision: str = 'fp32'
    channels_last: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` / ``FileNotFoundError`` naming the first bad
        option (as ``--option-name``)."""
        positive = ('pretrain_limit', 'probe_train_per_class',
                    'probe_val_per_class', 'monitor_per_class', 'size',
                    'epochs', 'minutes', 'batch_size', 'repeat', 'dense_size',
                    'dense_limit', 'diversity_images', 'easy_classes')
        for name in positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(
                    f'{option_flag(name)} must be > 0, got {value}')
        for name in ('monitor_interval', 'workers', 'linear_weight_decay',
                     'dense_weight_decay'):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f'{option_flag(name)} must be >= 0, got '
                                 f'{getattr(self, name)}')
        if self.size < 32 or self.dense_size < 64:
            raise ValueError(
                f'--size must be >= 32 and --dense-size >= 64 (layer 4 has '
                f'stride 32; region statistics need 2 x 2 regions), got '
                f'{self.size} and {self.dense_size}')
        for name, choices in (('recipe', RECIPES), ('precision', PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f'{option_flag(name)} must be one of '
                                 f'{", ".join(choices)}, got '
                                 f'{getattr(self, name)!r}')
        for name in ('data', 'pretrain_images', 'dense', 'teacher'):
            path = getattr(self, name)
            if path is not None and not osp.exists(path):
                raise FileNotFoundError(
                    f'{option_flag(name)} {path!r} does not exist')

    def _values(self, names: Sequence[str]) -> dict:
        """The settings ``names``, paths made absolute."""
        out = {name: getattr(self, name) for name in names}
        for name in ('data', 'pretrain_images', 'dense', 'teacher'):
            if out.get(name) is not None:
                out[name] = osp.abspath(out[name])
        return out

    def training(self) -> dict:
        """The settings of :data:`TRAINING_SETTINGS` (a work directory
        keeps them and refuses others)."""
        return self._values(TRAINING_SETTINGS)

    def evaluation(self) -> dict:
        """The settings of the probes (an evaluation done with others is
        done again)."""
        return self._values([
            f.name for f in dataclasses.fields(self)
            if f.name not in TRAINING_SETTINGS + ('workers', )
        ])


def option_flag(name: str) -> str:
    """``--option-name`` of a settings field."""
    return '--' + name.replace('_', '-')


@dataclass(frozen=True)
class Preset:
    """A protocol of docs/study.md as defaults of ``compare_methods.py``.

    Attributes:
        description (str): One line for ``--help``.
        options (dict): Values of the tool's options by their
            :class:`CompareSettings` name (and ``methods``, ``seeds``,
            ``threads``); options given on the command line win.
    """

    description: str
    options: Dict[str, object]


#: Every method, in report order.
_ALL = list(METHODS)
#: The protocols of docs/study.md (``--preset``): Tiny ImageNet
#: (``--data``) and COCO person masks (``--dense``) with the small-image
#: recipe, the 200-class probes on 10 / 5 images per class (``cpu``) or
#: 20 / 10 (``gpu``), and 10 classes with all their images (150 / 50) as
#: the easy split.
PRESETS: Dict[str, Preset] = {
    'cpu-tinyin':
    Preset(
        'the CPU protocol: 64 px, 2 epochs of 1600 images, batch 32, one '
        'thread, 3 seeds (about 30 min per trained run on 2 busy cores)',
        dict(recipe='small-image', size=64, epochs=2, batch_size=32,
             pretrain_limit=1600, easy_classes=10, probe_train_per_class=10,
             probe_val_per_class=5, monitor_per_class=50, dense_size=128,
             diversity_images=32, workers=1, threads=1, seeds=[0, 1, 2],
             methods=_ALL)),
    'gpu-tinyin':
    Preset(
        'the GPU study: the CPU protocol with 15x the images per run (6 '
        'epochs of 8000 at 64 px), batch 256, bf16, channels-last, 14 data '
        'workers, 3 seeds (about 11 min on one H100, an estimate: '
        'docs/study.md)',
        dict(recipe='small-image', size=64, epochs=6, batch_size=256,
             pretrain_limit=8000, precision='bf16', channels_last=True,
             easy_classes=10, probe_train_per_class=20,
             probe_val_per_class=10, monitor_per_class=50, dense_size=224,
             diversity_images=32, workers=14, seeds=[0, 1, 2],
             methods=_ALL)),
}  # yapf: disable
