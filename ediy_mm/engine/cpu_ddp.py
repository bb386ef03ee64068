from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

__all__ = ['CPUDistributedDataParallel']


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU processes (gloo).

    SyncBN needs CUDA, so it becomes per-process BN, and DDP gets no device
    ids (the Runner's default ``device_ids=[LOCAL_RANK]`` is dropped).
    ``tools/train.py`` selects it when CUDA is not available. Registered in
    mmengine's root registry: the Runner looks wrappers up there.

    Args:
        module (nn.Module): The model.
        **kwargs: Passed to :class:`MMDistributedDataParallel`.
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        kwargs.pop('device_ids', None)
        super().__init__(
            module=revert_sync_batchnorm(module), device_ids=None, **kwargs)
