from .larc import LARC, larc_gradient

__all__ = ['LARC', 'larc_gradient']
