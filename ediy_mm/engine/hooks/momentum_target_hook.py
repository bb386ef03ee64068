from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

__all__ = ['MomentumTargetHook']


@HOOKS.register_module()
class MomentumTargetHook(Hook):
    """No longer needed: kept so that configs listing it still load.

    The momentum target now moves by itself once per real optimizer step
    (:class:`~ediy_mm.models.utils.MomentumTargetMixin`, through torch's
    optimizer step post-hook), under any Runner, wrapper and gradient
    accumulation. This hook does nothing but say so once, before training;
    remove it from ``custom_hooks``.
    """

    def before_train(self, runner) -> None:
        """Log that the hook is no longer needed."""
        print_log(
            'MomentumTargetHook is no longer needed and does nothing: the '
            'momentum target moves once per optimizer step by itself. '
            "Remove dict(type='MomentumTargetHook') from custom_hooks.",
            logger='current')
