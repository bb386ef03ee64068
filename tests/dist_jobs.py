"""Several trainings, one after the other, in every process of one torchrun
launch, each run the way ``tools/train.py --launcher pytorch`` runs it (its
own ``parse_args``, ``merge_args`` and runner): tests of many configs under
DDP pay the start of the processes, their imports and the process group
once instead of once per config.

Usage::

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_jobs.py \\
        JOBS.json

``JOBS.json`` maps a name to the arguments of ``tools/train.py`` (the
config first, ``--work-dir`` given). A run that raises leaves its
traceback in ``WORK_DIR/failed_rank{rank}.txt`` and ends the launch on
that process: after a failure on one process only the process group
cannot be trusted, so no later run starts. The other process then fails
at its next collective, within the group's timeout (5 minutes), and
leaves its own file.
"""
import datetime
import json
import os
import os.path as osp
import sys
import traceback

import torch.distributed as dist
from mmengine.config import Config

from helpers import load_tool


def main(path: str) -> None:
    train = load_tool('tools/train.py')
    dist.init_process_group('gloo', timeout=datetime.timedelta(minutes=5))
    with open(path) as f:
        jobs = json.load(f)
    for name, argv in jobs.items():
        try:
            args = train.parse_args([*argv, '--launcher', 'pytorch'])
            cfg = train.merge_args(Config.fromfile(args.config), args)
            cfg.experiment_name = name  # one logger and message hub per run
            train.build_runner(cfg).train()
            dist.barrier()
        except Exception:  # noqa: B902 (reported to the test)
            work_dir = argv[argv.index('--work-dir') + 1]
            os.makedirs(work_dir, exist_ok=True)
            failed = osp.join(work_dir, f'failed_rank{dist.get_rank()}.txt')
            with open(failed, 'w') as f:
                f.write(traceback.format_exc())
            break
    else:
        train.close_distributed()


if __name__ == '__main__':
    main(sys.argv[1])
