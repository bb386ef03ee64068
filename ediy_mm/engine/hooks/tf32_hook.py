from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

__all__ = ['TF32Hook']


@HOOKS.register_module()
class TF32Hook(Hook):
    """Run float32 matrix multiplications on TensorFloat-32 tensor cores
    (Ampere and later NVIDIA GPUs) for the run.

    PyTorch already runs float32 convolutions in TF32 by default
    (``torch.backends.cudnn.conv.fp32_precision == 'tf32'``); its matrix
    multiplications (linear layers, ``bmm``) stay in full float32 unless
    asked. With ``enabled=True`` this hook sets
    ``torch.set_float32_matmul_precision('high')`` (``'highest'`` with
    ``enabled=False``) before the run and puts the previous setting back
    after it. TF32 keeps float32's range with a 10-bit mantissa and
    accumulates in float32. It has no effect on what autocast already runs
    in (b)float16 (``--amp``).

    Args:
        enabled (bool): TF32 matrix multiplications on (True) or off.
            Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._previous: Optional[str] = None

    def before_run(self, runner) -> None:
        """Set the float32 matmul precision."""
        self._previous = torch.get_float32_matmul_precision()
        precision = 'high' if self.enabled else 'highest'
        torch.set_float32_matmul_precision(precision)
        print_log(
            f'TF32Hook: float32 matmul precision {precision!r} (TF32 '
            f"{'on' if self.enabled else 'off'})",
            logger='current')

    def after_run(self, runner) -> None:
        """Put the previous precision back."""
        if self._previous is not None:
            torch.set_float32_matmul_precision(self._previous)
            self._previous = None
