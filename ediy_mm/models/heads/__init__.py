from .ediy_head import EDIYHead

__all__ = ['EDIYHead']
