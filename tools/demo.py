"""`make demo`: the paper's two stages on a CPU, on real photos.

1. Pre-train a BYOL ResNet-18 (the teacher).
2. Pre-train E-DIY with that frozen teacher choosing the regions.

Both stages run ``tools/train.py`` with the real mmengine Runner. The
photos are the ones scikit-image ships, unless ``--images`` names a folder.
"""
import argparse
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs', 'ediy')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--images', help='a folder of images (default: scikit-image photos)')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--epochs', type=int, default=2, help='epochs of each stage (>= 2)')
    parser.add_argument(
        '--repeat',
        type=int,
        default=16,
        help='random crops drawn from each image per epoch')
    return parser.parse_args()


def train(config: str, work_dir: str, options: list) -> str:
    """Run tools/train.py and return the last checkpoint it wrote."""
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'),
        osp.join(CONFIGS, config), '--work-dir', work_dir, '--cfg-options',
        *options
    ]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def main() -> None:
    args = parse_args()
    options = [
        f'train_cfg.max_epochs={args.epochs}',
        # the cosine phase of the CPU configs spans epochs 1 .. max_epochs
        f'param_scheduler.1.T_max={max(args.epochs - 1, 1)}',
        f'param_scheduler.1.end={args.epochs}',
        f'train_dataloader.dataset.repeat={args.repeat}',
    ]
    if args.images:
        options.append(f'train_dataloader.dataset.data_root={args.images}')
    start = time.time()
    print('[demo 1/2] BYOL teacher', flush=True)
    teacher = train('byol_resnet18_cpu-128px_photos.py',
                    osp.join(args.work_dir, 'teacher'), options)
    print('[demo 2/2] E-DIY with the frozen teacher', flush=True)
    ediy = train('ediy_resnet18_cpu-128px_photos.py',
                 osp.join(args.work_dir, 'ediy'),
                 options + [f'model.teacher.checkpoint={teacher}'])
    print(f'\nDemo done in {time.time() - start:.0f} s.\n'
          f'  teacher (BYOL): {teacher}\n'
          f'  E-DIY:          {ediy}')


if __name__ == '__main__':
    main()
