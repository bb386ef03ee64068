from .ediy_losses import (byol_loss, match_regions, matched_cosine,
                          random_partners, random_regions, rdem_instance_loss,
                          rdem_loss, riem_loss)
from .mosrep_losses import mosaic_byol_loss, mosrep_contrastive_loss
from .univip_losses import (instance_cost, instance_loss, instance_marginals,
                            pair_loss, round_plan, scene_instance_loss,
                            scene_loss, sinkhorn)

__all__ = [
    'byol_loss', 'match_regions', 'random_regions', 'random_partners',
    'matched_cosine', 'rdem_loss', 'riem_loss', 'rdem_instance_loss',
    'mosaic_byol_loss', 'mosrep_contrastive_loss', 'instance_cost',
    'instance_loss', 'instance_marginals', 'pair_loss', 'round_plan',
    'scene_instance_loss', 'scene_loss', 'sinkhorn'
]
