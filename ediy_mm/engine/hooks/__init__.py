from .finite_loss_hook import FiniteLossHook
from .teacher_hook import TeacherHook

__all__ = ['FiniteLossHook', 'TeacherHook']
