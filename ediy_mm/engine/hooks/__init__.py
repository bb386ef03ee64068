from .teacher_hook import TeacherHook

__all__ = ['TeacherHook']
