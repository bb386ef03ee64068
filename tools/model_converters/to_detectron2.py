"""Convert the backbone of an mmengine checkpoint for detectron2.

Writes the ``.pkl`` detectron2's checkpointer reads, with detectron2's
ResNet names (the renaming of MoCo's ``convert-pretrain-to-detectron2.py``)
and ``matching_heuristics``. Use it as ``MODEL.WEIGHTS`` with torchvision's
pixel mean/std in RGB and ``MODEL.RESNETS.STRIDE_IN_1X1 False``, as in
MoCo's detection configs::

    python tools/model_converters/to_detectron2.py \
        work_dirs/ediy/epoch_300.pth ediy_r50_detectron2.pkl
"""
import pickle

from ediy_mm.utils.convert import (converter_parser, load_state_dict,
                                   to_detectron2)


def main() -> None:
    """Run the converter."""
    args = converter_parser(__doc__.splitlines()[0]).parse_args()
    content, conversion = to_detectron2(load_state_dict(args.src), args.prefix)
    print(conversion.report())
    with open(args.dst, 'wb') as f:
        pickle.dump(content, f)
    print(f'saved {args.dst}')


if __name__ == '__main__':
    main()
