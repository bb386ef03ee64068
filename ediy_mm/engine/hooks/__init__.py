from .atomic_checkpoint_hook import AtomicCheckpointHook
from .finite_loss_hook import FiniteLossHook
from .knn_monitor_hook import KNNMonitorHook, topk_correct, weighted_knn
from .momentum_target_hook import MomentumTargetHook
from .random_state_hook import RandomStateHook
from .teacher_hook import TeacherHook
from .tf32_hook import TF32Hook

__all__ = [
    'AtomicCheckpointHook', 'FiniteLossHook', 'KNNMonitorHook',
    'MomentumTargetHook', 'RandomStateHook', 'TeacherHook', 'TF32Hook',
    'topk_correct', 'weighted_knn'
]
