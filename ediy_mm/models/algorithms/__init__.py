from .ediy import EDIY, REGION_GRIDS, check_region_grids, check_two_views
from .mosrep import MosaicSelfSupervisor, MosRep, MosRepBYOL, rank_offset
from .mosrep_ediy import EDIYMosaic
from .teacher import FrozenTeacher, TeacherCheckpointError, weights_fingerprint
from .univip import UniVIP

__all__ = [
    'EDIY', 'FrozenTeacher', 'TeacherCheckpointError', 'REGION_GRIDS',
    'check_region_grids', 'check_two_views', 'weights_fingerprint',
    'MosaicSelfSupervisor', 'MosRep', 'MosRepBYOL', 'rank_offset',
    'EDIYMosaic', 'UniVIP'
]
