from .ediy_neck import EDIYNeck, project_regions

__all__ = ['EDIYNeck', 'project_regions']
