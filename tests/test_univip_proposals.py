"""The UniVIP proposal tool: selective search filtered by the paper's rules,
resumed after a SIGKILL without recomputing finished images; unreadable
images named and skipped."""
import json
import multiprocessing
import os
import shutil
import signal
import time

import numpy as np
import pytest

import ediy_mm.datasets.univip_proposals as proposals
from ediy_mm.datasets import list_images
from ediy_mm.datasets.univip_boxes import BoxRules, box_iou
from ediy_mm.datasets.univip_dataset import read_proposal_file
from helpers import load_tool

TOOL = load_tool('tools/dataset_converters/univip_proposals.py')


def _tool_in_new_session(argv):
    """The tool's main in a process group of its own (killed as one)."""
    os.setsid()
    TOOL.main(argv)


def image_folder(tmp_path, photos_dir):
    folder = tmp_path / 'images'
    shutil.copytree(photos_dir, folder / 'photos')
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
    return folder


def part_lines(parts_dir):
    lines = []
    for name in sorted(os.listdir(parts_dir)):
        if name.endswith('.jsonl'):
            with open(parts_dir / name) as f:
                lines += f.readlines()
    return lines


def test_kill_resume_and_unreadable_image(tmp_path, photos_dir, capfd,
                                          monkeypatch):
    folder = image_folder(tmp_path, photos_dir)
    out = tmp_path / 'proposals.json'
    parts = tmp_path / 'proposals.json.parts'
    argv = [
        str(folder), '--out',
        str(out), '--workers', '2', '--max-side', '160', '--no-progress'
    ]
    files = list_images(str(folder), relative=True)
    assert len(files) >= 10 and 'broken.png' in files

    # A real SIGKILL of the tool and its workers after a few images.
    child = multiprocessing.get_context('fork').Process(
        target=_tool_in_new_session, args=(argv, ))
    child.start()
    deadline = time.time() + 60
    while time.time() < deadline and child.is_alive():
        if parts.is_dir() and len(part_lines(parts)) >= 2:
            break
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL, 'finished before the kill'
    assert not out.exists()
    done = set()
    for line in part_lines(parts):
        try:
            done.add(json.loads(line)['file'])
        except ValueError:  # a line torn by the kill: computed again
            pass
    assert 0 < len(done) < len(files)

    # Other options than the interrupted run's are refused.
    with pytest.raises(ValueError, match='other options'):
        TOOL.main(argv + ['--min-size', '32'])

    # The same command again computes only the missing images.
    computed = []
    record = proposals._image_record

    def spy(file, **kwargs):
        computed.append(file)
        return record(file, **kwargs)

    monkeypatch.setattr(proposals, '_image_record', spy)
    capfd.readouterr()
    summary = TOOL.main(argv[:3] + ['--workers', '1', '--max-side', '160'])
    captured = capfd.readouterr()
    assert sorted(computed) == sorted(set(files) - done)
    assert (f'{len(files) - len(done)} of {len(files)} images to compute '
            f'({len(done)} done before)') in captured.out
    assert summary['computed'] == len(files) - len(done)

    # The unreadable image is named on stderr (by whichever run read it)
    # and listed as skipped; the others all have boxes obeying the rules.
    content = read_proposal_file(str(out))
    assert [r['file'] for r in content['skipped']] == ['broken.png']
    assert summary['skipped'] == ['broken.png']
    if 'broken.png' not in done:
        assert 'skipped unreadable image broken.png' in captured.err
    assert sorted(
        r['file']
        for r in content['images']) == sorted(set(files) - {'broken.png'})
    rules = BoxRules()
    for image in content['images']:
        boxes = np.asarray(image['boxes']).reshape(-1, 4)
        assert len(boxes) and rules.shape_ok(boxes).all()
        assert (boxes[:, 2] <= image['width']).all()
        assert (boxes[:, 3] <= image['height']).all()
        iou = box_iou(boxes, boxes)[~np.eye(len(boxes), dtype=bool)]
        assert (iou <= 0.5).all()
    assert not parts.exists()

    # Nothing left to do: a third run computes nothing.
    assert TOOL.main(argv)['computed'] == 0


def test_coco_json_lists_its_images(tmp_path, photos_dir):
    ann = tmp_path / 'instances.json'
    ann.write_text(
        json.dumps(
            dict(images=[
                dict(id=1, file_name='chelsea.png'),
                dict(id=2, file_name='coffee.png')
            ])))
    out = tmp_path / 'coco.json'
    summary = TOOL.main([
        photos_dir, '--coco',
        str(ann), '--out',
        str(out), '--workers', '1', '--max-side', '96', '--min-size', '32',
        '--max-boxes', '3', '--no-progress'
    ])
    content = read_proposal_file(str(out))
    assert [r['file']
            for r in content['images']] == ['chelsea.png', 'coffee.png']
    assert all(0 < len(r['boxes']) <= 3 for r in content['images'])
    assert content['params']['rules']['min_size'] == 32
    assert summary['images'] == 2


def test_rules_filter_in_order():
    rules = BoxRules(min_size=10, max_aspect=3, max_iou=0.5)
    boxes = np.array([
        [0, 0, 20, 20],  # kept
        [0, 0, 20, 19],  # IoU 0.95 with the first: dropped
        [0, 0, 9, 20],  # too thin
        [0, 0, 40, 10],  # aspect 4
        [10, 0, 30, 20],  # IoU 1/3: kept
    ])
    assert rules.filter(boxes).tolist() == [[0, 0, 20, 20], [10, 0, 30, 20]]
    assert rules.filter(boxes, max_boxes=1).tolist() == [[0, 0, 20, 20]]
    with pytest.raises(ValueError, match='max_iou'):
        BoxRules(max_iou=1)


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        TOOL.main([str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'o')])
    with pytest.raises(FileNotFoundError, match='univip_proposals.py'):
        read_proposal_file(str(tmp_path / 'none.json'))
    (tmp_path / 'other.json').write_text('{"images": []}')
    with pytest.raises(ValueError, match='not a UniVIP proposal file'):
        read_proposal_file(str(tmp_path / 'other.json'))


def test_opencv_without_contrib_or_mixed_versions_is_refused(monkeypatch):
    import cv2
    monkeypatch.setattr(
        proposals, '_distribution_versions', lambda: {
            'opencv-python': '5.0.0.93',
            'opencv-contrib-python': '4.12.0.88'
        })
    with pytest.raises(ImportError, match='different versions'):
        proposals.require_selective_search()
    monkeypatch.setattr(proposals, '_distribution_versions',
                        lambda: {'opencv-python': '5.0.0.93'})
    monkeypatch.delattr(cv2, 'ximgproc')
    with pytest.raises(
            ImportError,
            match='not the contrib build.*opencv-contrib-python==5.0.0.93'):
        proposals.require_selective_search()
