"""Extract the online backbone of an mmengine checkpoint.

Writes the backbone's own state dict (keys without the prefix, tensors
only), for any backbone (ResNet, ViT, Swin, ConvNeXt ...): it loads with
``torch.load(path, weights_only=True)`` and ``strict=True`` into the
backbone the config built (``model.backbone``), in mmpretrain or mmdet
(``init_cfg=dict(type='Pretrained', checkpoint=PATH)``)::

    python tools/model_converters/extract_backbone.py \
        work_dirs/ediy/epoch_300.pth ediy_r50_backbone.pth
"""

import torch

from ediy_mm.utils.convert import (converter_parser, extract_backbone,
                                   load_state_dict)


def main() -> None:
    """Run the converter."""
    args = converter_parser(__doc__.splitlines()[0]).parse_args()
    conversion = extract_backbone(load_state_dict(args.src), args.prefix)
    print(conversion.report())
    torch.save(conversion.state_dict, args.dst)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()
