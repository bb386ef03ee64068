"""tools/analysis_tools/benchmark_pipeline.py on real photos: every stage
measured, in the JSON report (no timing is asserted)."""
import json

from helpers import CPU_BYOL, load_tool


def test_pipeline_benchmark_reports_every_stage(tmp_path, photos_dir):
    tool = load_tool('tools/analysis_tools/benchmark_pipeline.py')
    out = tmp_path / 'report.json'
    report = tool.main([
        CPU_BYOL, '--images', photos_dir, '--rounds', '2', '--batch', '2',
        '--warmup', '0', '--out',
        str(out)
    ])
    assert json.loads(out.read_text())['table'] == report['table']
    results = report['results']
    assert list(results) == [
        'decode cv2', 'decode PIL', 'stock', 'device path',
        'device path, no draft'
    ]
    for name, entry in results.items():
        assert entry['images'] == 4 and entry['per_core'] > 0, name
        packed = name not in ('decode cv2', 'decode PIL')
        assert ('end_to_end_ms_per_sample' in entry) == packed, name
    assert report['table'].count('\n') == len(results) + 1
