"""Convert the backbone of an mmengine checkpoint for torchvision.

The output loads with ``strict=True`` into ``torchvision.models.resnet50()``
(or ``--arch``). Its ``fc`` comes from the checkpoint's linear classifier
(``head.fc``) if it has one, else it is zeros::

    python tools/model_converters/to_torchvision.py \
        work_dirs/ediy/epoch_300.pth ediy_r50_torchvision.pth

    model = torchvision.models.resnet50()
    model.load_state_dict(torch.load('ediy_r50_torchvision.pth'))
"""

import torch

from ediy_mm.utils.convert import (converter_parser, load_state_dict,
                                   to_torchvision)


def main() -> None:
    """Run the converter."""
    parser = converter_parser(__doc__.splitlines()[0])
    parser.add_argument(
        '--arch',
        default='resnet50',
        help='torchvision constructor to check the output against')
    args = parser.parse_args()
    conversion = to_torchvision(
        load_state_dict(args.src), args.prefix, arch=args.arch)
    print(conversion.report())
    torch.save(conversion.state_dict, args.dst)
    print(f'saved {args.dst}; torchvision.models.{args.arch}() loads it '
          'with strict=True')


if __name__ == '__main__':
    main()
