from .atomic_checkpoint_hook import AtomicCheckpointHook
from .finite_loss_hook import FiniteLossHook
from .knn_monitor_hook import KNNMonitorHook, topk_correct, weighted_knn
from .teacher_hook import TeacherHook

__all__ = [
    'AtomicCheckpointHook', 'FiniteLossHook', 'KNNMonitorHook', 'TeacherHook',
    'topk_correct', 'weighted_knn'
]
