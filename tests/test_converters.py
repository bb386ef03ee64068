"""tools/model_converters/: extract_backbone, to_torchvision, to_detectron2.

The converters run on a ResNet-50 saved the way mmengine saves an E-DIY
model: the online backbone under ``backbone.``, other parts (neck, momentum
target, teacher) beside it, and the message hub with its numpy buffers.
"""
import argparse
import pickle
import sys
from typing import Dict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmpretrain.registry import MODELS
from skimage import data as skdata

from ediy_mm.utils import UnsafeCheckpointError
from ediy_mm.utils.convert import load_state_dict, to_torchvision
from helpers import load_tool, save_r50_checkpoint


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'ediy_r50.pth')
    return path, save_r50_checkpoint(path)


def run_converter(name: str, *args: str, monkeypatch, capsys) -> str:
    """Run a converter's ``main`` with ``args``; return what it printed."""
    tool = load_tool(f'tools/model_converters/{name}.py')
    monkeypatch.setattr(sys, 'argv', [name, *args])
    tool.main()
    return capsys.readouterr().out


def assert_reports_drops(out: str) -> None:
    for group in ('neck', 'target_net', 'teacher'):
        assert f'dropped {group}.* (1 keys)' in out
    assert 'took backbone.layer4.2.bn3.running_var -> ' in out


def test_extract_backbone(checkpoint, tmp_path, monkeypatch, capsys):
    src, backbone = checkpoint
    dst = str(tmp_path / 'backbone.pth')
    out = run_converter(
        'extract_backbone', src, dst, monkeypatch=monkeypatch, capsys=capsys)
    assert_reports_drops(out)
    assert f'took {len(backbone)} tensors' in out

    weights = torch.load(dst, weights_only=True)
    assert list(weights) == list(backbone)
    for key, value in backbone.items():
        assert torch.equal(weights[key], value), key
    MODELS.build(dict(type='ResNet', depth=50)).load_state_dict(
        weights, strict=True)


def test_to_torchvision_gives_our_layer4_features(checkpoint, tmp_path,
                                                  monkeypatch, capsys):
    src, backbone = checkpoint
    dst = str(tmp_path / 'torchvision.pth')
    out = run_converter(
        'to_torchvision', src, dst, monkeypatch=monkeypatch, capsys=capsys)
    assert_reports_drops(out)
    assert 'added fc.weight' in out and 'added fc.bias' in out

    resnet = torchvision.models.resnet50()
    resnet.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    assert not resnet.fc.weight.any()
    ours = MODELS.build(dict(type='ResNet', depth=50))
    ours.load_state_dict(backbone, strict=True)
    ours.eval()  # mmpretrain's ResNet.train returns None

    image = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1)[None]
    image = F.interpolate(image.float(), size=(224, 224), mode='bilinear')
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    image = (image - mean) / std
    trunk = torch.nn.Sequential(*list(resnet.children())[:-2]).eval()
    with torch.no_grad():
        expected = ours(image)[-1]
        features = trunk(image)
    assert features.shape == (1, 2048, 7, 7)
    assert features.std() > 0
    torch.testing.assert_close(features, expected)


def test_to_torchvision_takes_a_linear_head_and_checks_the_arch(checkpoint):
    _, backbone = checkpoint
    state_dict = {f'backbone.{k}': v for k, v in backbone.items()}
    state_dict['head.fc.weight'] = torch.randn(10, 2048)
    state_dict['head.fc.bias'] = torch.randn(10)
    conversion = to_torchvision(state_dict)
    assert ('head.fc.weight', 'fc.weight') in conversion.renamed
    assert conversion.added == [] and conversion.dropped == []
    assert torch.equal(conversion.state_dict['fc.bias'],
                       state_dict['head.fc.bias'])
    with pytest.raises(RuntimeError, match='not a torchvision resnet18'):
        to_torchvision(state_dict, arch='resnet18')


def detectron2_r50_shapes() -> Dict[str, tuple]:
    """Names and shapes of detectron2's ResNet-50 (``build_resnet_backbone``
    with BN: ``stem.conv1``, ``res2``-``res5``, ``convN.norm``,
    ``shortcut``), written out independently of the converter."""
    shapes = {}

    def conv(name, out_channels, in_channels, kernel):
        shapes[f'{name}.weight'] = (out_channels, in_channels, kernel, kernel)
        for buffer in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{name}.norm.{buffer}'] = (out_channels, )
        shapes[f'{name}.norm.num_batches_tracked'] = ()

    conv('stem.conv1', 64, 3, 7)
    in_channels = 64
    for stage, blocks, width in zip((2, 3, 4, 5), (3, 4, 6, 3),
                                    (64, 128, 256, 512)):
        for block in range(blocks):
            name = f'res{stage}.{block}'
            conv(f'{name}.conv1', width, in_channels, 1)
            conv(f'{name}.conv2', width, width, 3)
            conv(f'{name}.conv3', 4 * width, width, 1)
            if block == 0:
                conv(f'{name}.shortcut', 4 * width, in_channels, 1)
            in_channels = 4 * width
    return shapes


def test_to_detectron2_names_and_shapes(checkpoint, tmp_path, monkeypatch,
                                        capsys):
    src, backbone = checkpoint
    dst = str(tmp_path / 'detectron2.pkl')
    out = run_converter(
        'to_detectron2', src, dst, monkeypatch=monkeypatch, capsys=capsys)
    assert_reports_drops(out)
    assert 'took backbone.layer1.0.downsample.1.weight -> ' \
        'res2.0.shortcut.norm.weight' in out

    with open(dst, 'rb') as f:
        content = pickle.load(f)
    assert content['matching_heuristics'] is True
    model = content['model']
    expected = detectron2_r50_shapes()
    assert sorted(model) == sorted(expected)
    for key, shape in expected.items():
        assert isinstance(model[key], np.ndarray), key
        assert model[key].shape == shape, key
    for ours, theirs in [
        ('conv1.weight', 'stem.conv1.weight'),
        ('bn1.running_mean', 'stem.conv1.norm.running_mean'),
        ('layer4.2.bn3.running_var', 'res5.2.conv3.norm.running_var'),
        ('layer3.0.downsample.0.weight', 'res4.0.shortcut.weight')
    ]:
        np.testing.assert_array_equal(model[theirs], backbone[ours].numpy())


def test_converters_refuse_unsafe_pickles(checkpoint, tmp_path):
    _, backbone = checkpoint
    path = str(tmp_path / 'unsafe.pth')
    torch.save(
        dict(
            state_dict={'backbone.conv1.weight': backbone['conv1.weight']},
            meta=argparse.Namespace(payload='not a tensor')), path)
    with pytest.raises(UnsafeCheckpointError, match='unsafe.pth'):
        load_state_dict(path)
