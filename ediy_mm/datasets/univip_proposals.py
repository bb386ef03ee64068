"""Unsupervised instance proposals for UniVIP (arXiv 2203.06965), computed
once, offline: OpenCV's selective search, filtered by the paper's rules.

The library behind ``tools/dataset_converters/univip_proposals.py``.

Selective search is OpenCV's contrib implementation
(``cv2.ximgproc.segmentation``, Uijlings et al. 2013), from the
``opencv-contrib-python`` wheel of the same version as mmcv's
``opencv-python`` (see ``docs/univip.md``).

Resume: results are appended, one JSON line per image, to
``OUT.parts/part-NNNNN.jsonl`` as workers finish them (one writer, a flush
per line), so a killed run loses at most the images in flight; a new run
reads the parts, computes only the images not in them, then writes ``OUT``
atomically and removes the parts.
"""
import json
import multiprocessing
import os
import os.path as osp
import shutil
import sys
from dataclasses import asdict
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .univip_boxes import BoxRules
from .univip_dataset import PROPOSALS_FORMAT, read_proposal_file

__all__ = [
    'MODES', 'compute_proposals', 'list_coco_images',
    'require_selective_search', 'selective_search'
]

#: Selective search strategies of OpenCV (``switchToSelectiveSearch*``).
MODES = ('fast', 'quality', 'single')


def require_selective_search():
    """Return ``cv2`` with its contrib selective search, or raise a clear
    error saying how to install it.

    ``opencv-python`` (mmengine needs it) and ``opencv-contrib-python``
    install into the same ``cv2/`` folder and the last one installed wins;
    with both at the same version the contrib build is a superset of the
    other. A contrib build missing, or the two at different versions (a
    mixed ``cv2/``), is refused.

    Returns:
        module: ``cv2``.

    Raises:
        ImportError: Saying what to reinstall.
    """
    import cv2
    versions = _distribution_versions()
    fix = ('pip install --force-reinstall --no-deps opencv-contrib-python=='
           f'{versions.get("opencv-python", "<opencv-python version>")}')
    if len(set(versions.values())) > 1:
        raise ImportError(
            f'opencv-python {versions["opencv-python"]} and '
            f'opencv-contrib-python {versions["opencv-contrib-python"]} '
            'share the cv2/ folder at different versions; install the same '
            f'version: {fix}')
    segmentation = getattr(
        getattr(cv2, 'ximgproc', None), 'segmentation', None)
    if not hasattr(segmentation, 'createSelectiveSearchSegmentation'):
        raise ImportError(
            f'OpenCV {getattr(cv2, "__version__", "?")} has no selective '
            'search (cv2.ximgproc.segmentation): the cv2 module installed is '
            'not the contrib build (opencv-python was installed after '
            f'opencv-contrib-python, or the latter is missing): {fix}')
    return cv2


def _distribution_versions() -> Dict[str, str]:
    """Versions of the installed OpenCV wheels that provide ``cv2``."""
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for name in ('opencv-python', 'opencv-contrib-python'):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def selective_search(image: np.ndarray,
                     mode: str = 'fast',
                     max_side: Optional[int] = None) -> np.ndarray:
    """All selective search boxes of an image, in OpenCV's order.

    Args:
        image (np.ndarray): ``[H, W, 3]`` uint8 BGR image.
        mode (str): ``'fast'`` (default), ``'quality'`` or ``'single'``
            (see :data:`MODES`).
        max_side (int, optional): Search on a copy whose longer side is at
            most this many pixels (faster on large images), boxes scaled
            back. Defaults to None: full resolution.

    Returns:
        np.ndarray: ``[N, 4]`` int64 boxes ``[x1, y1, x2, y2]`` (ends
        exclusive) in pixels of ``image``.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    cv2 = require_selective_search()
    height, width = image.shape[:2]
    scale = 1.
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(
            image,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(image)
    getattr(search, f'switchToSelectiveSearch{mode.capitalize()}')()
    rects = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)
    boxes = np.round(boxes / scale)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes.astype(np.int64)


def list_coco_images(ann_file: str) -> List[str]:
    """The ``file_name`` of every image of a COCO-style JSON, sorted."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'COCO file {ann_file!r} does not exist')
    with open(ann_file) as f:
        images = json.load(f).get('images')
    if not images:
        raise ValueError(f'{ann_file} lists no "images"')
    return sorted({image['file_name'] for image in images})


def _init_worker() -> None:
    """One OpenCV thread per worker process."""
    require_selective_search().setNumThreads(1)


def _image_record(file: str, root: str, params: dict) -> dict:
    """The proposals of one image, or the reason it was skipped."""
    cv2 = require_selective_search()
    try:
        image = cv2.imread(osp.join(root, file), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError('OpenCV cannot decode it')
        boxes = selective_search(image, params['mode'], params['max_side'])
    except Exception as err:
        return dict(file=file, error=f'{type(err).__name__}: {err}')
    rules = BoxRules(**params['rules'])
    boxes = rules.filter(boxes, params['max_boxes'])
    return dict(
        file=file,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        boxes=boxes.tolist())


def _read_parts(parts_dir: str) -> Tuple[Dict[str, dict], int]:
    """The records of every part file, and the number of torn lines (a
    line cut by a kill)."""
    records, torn = {}, 0
    for name in sorted(os.listdir(parts_dir)):
        if not name.endswith('.jsonl'):
            continue
        with open(osp.join(parts_dir, name)) as f:
            for line in f:
                try:
                    record = json.loads(line)
                    records[record['file']] = record
                except (ValueError, KeyError, TypeError):
                    torn += 1
    return records, torn


def _atomic_json(content, path: str) -> None:
    """Write ``content`` to ``path`` through a temporary file."""
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(content, f)
    os.replace(tmp, path)


def _check_params(params: dict, found: dict, where: str) -> None:
    """Refuse to mix results computed with other options."""
    if found != params:
        raise ValueError(
            f'{where} was computed with other options ({found}) than '
            f'these ({params}): use the same options, or another --out '
            '(or delete it to start again).')


def _done_before(out_file: str, parts_dir: str,
                 params: dict) -> Dict[str, dict]:
    """The records already computed for ``out_file`` (its parts, and the
    file itself when it exists)."""
    records = {}
    if osp.isfile(out_file):
        content = read_proposal_file(out_file)
        _check_params(params, content['params'], out_file)
        records.update((r['file'], r) for r in content['images'])
        records.update((r['file'], r) for r in content['skipped'])
    params_file = osp.join(parts_dir, 'params.json')
    if osp.isfile(params_file):
        with open(params_file) as f:
            _check_params(params, json.load(f), parts_dir)
    else:
        os.makedirs(parts_dir, exist_ok=True)
        _atomic_json(params, params_file)
    parts, torn = _read_parts(parts_dir)
    if torn:
        print(
            f'{torn} line(s) cut by an interruption in {parts_dir}: '
            'their images are computed again',
            file=sys.stderr)
    records.update(parts)
    return records


def compute_proposals(root: str,
                      files: Sequence[str],
                      out_file: str,
                      rules: BoxRules = BoxRules(),
                      mode: str = 'fast',
                      max_side: Optional[int] = None,
                      max_boxes: Optional[int] = None,
                      workers: int = 1,
                      progress: bool = True) -> dict:
    """Selective search on every image, filtered by ``rules``, into one
    proposal file (the input of :class:`~ediy_mm.datasets.UniVIPDataset`),
    resuming an interrupted run.

    Images already in ``OUT.parts/`` or in an existing ``out_file`` are not
    computed again (they must have been computed with the same options).
    An image that cannot be read is reported by name on stderr and listed
    under ``skipped``.

    Args:
        root (str): The image root; ``files`` are relative to it.
        files (Sequence[str]): The images.
        out_file (str): The JSON to write.
        rules (BoxRules): The filter. Defaults to the paper's (min side 64
            px, aspect in [1/3, 3], IoU <= 0.5).
        mode (str): Selective search strategy (:data:`MODES`).
        max_side (int, optional): See :func:`selective_search`.
        max_boxes (int, optional): Keep at most this many boxes per image
            (the first in OpenCV's order). Defaults to None (all).
        workers (int): Processes. Defaults to 1 (this process).
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``images`` (count written), ``skipped`` (the skipped files),
        ``computed`` (images computed by this call), ``boxes`` (total).
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if workers < 1:
        raise ValueError(f'workers must be >= 1, got {workers}')
    if not files:
        raise ValueError('no image to compute proposals for')
    require_selective_search()
    params = dict(
        rules=asdict(rules), mode=mode, max_side=max_side, max_boxes=max_boxes)
    parts_dir = f'{out_file}.parts'
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    records = _done_before(out_file, parts_dir, params)
    todo = [file for file in files if file not in records]
    print(
        f'{len(todo)} of {len(files)} images to compute '
        f'({len(files) - len(todo)} done before), {workers} process(es)',
        flush=True)
    if todo:
        _run(todo, root, params, parts_dir, records, workers, progress)
    images = [records[f] for f in files if 'error' not in records[f]]
    skipped = [records[f] for f in files if 'error' in records[f]]
    _atomic_json(
        dict(
            format=PROPOSALS_FORMAT,
            params=params,
            images=images,
            skipped=skipped), out_file)
    shutil.rmtree(parts_dir)
    return dict(
        images=len(images),
        skipped=[r['file'] for r in skipped],
        computed=len(todo),
        boxes=sum(len(r['boxes']) for r in images))


def _run(todo: List[str], root: str, params: dict, parts_dir: str,
         records: Dict[str, dict], workers: int, progress: bool) -> None:
    """Compute ``todo`` into a new part file and into ``records``."""
    from mmengine.utils import ProgressBar
    index = len([n for n in os.listdir(parts_dir) if n.endswith('.jsonl')])
    part = osp.join(parts_dir, f'part-{index:05d}.jsonl')
    work = partial(_image_record, root=root, params=params)
    bar = ProgressBar(len(todo)) if progress else None
    pool = None
    if workers > 1:
        pool = multiprocessing.get_context('fork').Pool(
            workers, initializer=_init_worker)
        results = pool.imap_unordered(work, todo)
    else:
        results = map(work, todo)
    try:
        with open(part, 'a') as sink:
            for record in results:
                sink.write(json.dumps(record) + '\n')
                sink.flush()
                records[record['file']] = record
                if 'error' in record:
                    print(
                        f'\nskipped unreadable image {record["file"]}: '
                        f'{record["error"]}',
                        file=sys.stderr,
                        flush=True)
                if bar is not None:
                    bar.update()
    finally:
        if pool is not None:
            pool.terminate()
    if bar is not None:
        print(flush=True)
