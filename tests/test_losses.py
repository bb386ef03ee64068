"""Tests of the E-DIY equations against plain per-image, per-region loops
written directly from eq. 2 and eq. 4-7. These are the very functions the
head trains with (test_model.py checks that the head calls them)."""
import pytest
import torch
import torch.nn.functional as F

from ediy_mm.models.losses import (byol_loss, match_regions, matched_cosine,
                                   random_partners, random_regions,
                                   rdem_instance_loss, rdem_loss, riem_loss)

# (H1, W1), (H2, W2) of the two views; D differs from every map size. The
# last two are ViT/16 patch grids of non-square views: 96 x 64 px for both
# views, and 128 x 96 against 96 x 128.
VIEW_SHAPES = [((3, 5), (7, 7)), ((7, 7), (1, 4)), ((1, 4), (3, 5)),
               ((6, 4), (6, 4)), ((8, 6), (6, 8))]
DIM = 6


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _maps(batch, hw, dim=DIM, requires_grad=False):
    return torch.randn(batch, dim, *hw, requires_grad=requires_grad)


def _cos(a, b):
    return F.cosine_similarity(a, b, dim=0)


def _naive_match(query, key, most):
    """Eq. 4 / eq. 6 region by region: ``[B, Nq]`` indices into ``key``."""
    q, k = query.flatten(2), key.flatten(2)
    out = torch.empty(q.size(0), q.size(2), dtype=torch.long)
    for b in range(q.size(0)):
        for j in range(q.size(2)):
            sims = [_cos(k[b, :, z], q[b, :, j]) for z in range(k.size(2))]
            best = max(sims) if most == 'similar' else min(sims)
            out[b, j] = sims.index(best)
    return out


def _naive_mean_matched_cos(x, y, index):
    """``[B]``: mean over regions j of cos(x[b, :, j], y[b, :, index[b, j]]).
    """
    x, y = x.flatten(2), y.flatten(2)
    return torch.stack([
        torch.stack(
            [_cos(x[b, :, j], y[b, :, index[b, j]])
             for j in range(x.size(2))]).mean() for b in range(x.size(0))
    ])


@pytest.mark.parametrize('batch,dim', [(1, 3), (4, 16)])
def test_byol_loss_matches_loop(batch, dim):
    p1, p2, t1, t2 = torch.randn(4, batch, dim).unbind(0)
    expected = torch.stack([
        4 - 2 * _cos(p1[b], t2[b]) - 2 * _cos(p2[b], t1[b])
        for b in range(batch)
    ]).mean()
    loss = byol_loss(p1, p2, t1, t2)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, expected)


def test_byol_loss_bounds():
    p1, p2 = torch.randn(2, 3, 8).unbind(0)
    # pred_1 is compared with target_2 and pred_2 with target_1.
    torch.testing.assert_close(
        byol_loss(p1, p2, 2 * p2, 3 * p1), torch.tensor(0.), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        byol_loss(p1, p2, -p2, -p1), torch.tensor(8.), atol=1e-6, rtol=0)
    assert byol_loss(p1, p2, 2 * p1, 3 * p2) > 1e-3


def test_byol_loss_stop_gradient():
    p1, p2, t1, t2 = torch.randn(4, 3, 8).unbind(0)
    for t in (p1, p2, t1, t2):
        t.requires_grad_()
    byol_loss(p1, p2, t1, t2).backward()
    assert t1.grad is None and t2.grad is None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


@pytest.mark.parametrize('most', ['similar', 'different'])
@pytest.mark.parametrize('shapes', VIEW_SHAPES)
def test_match_regions_matches_loop(shapes, most):
    query, key = _maps(2, shapes[0]), _maps(2, shapes[1])
    index = match_regions(query, key, most)
    assert index.dtype == torch.long
    assert index.shape == (2, shapes[0][0] * shapes[0][1])
    assert torch.equal(index, _naive_match(query, key, most))


@pytest.mark.parametrize('most,sign', [('similar', 1), ('different', -1)])
def test_match_regions_finds_permuted_regions(most, sign):
    query = _maps(3, (4, 5))
    perm = torch.randperm(20)
    # Region z of key is (a positive multiple of) region perm[z] of query.
    key = sign * 2.5 * query.flatten(2)[:, :, perm].view_as(query)
    expected = torch.argsort(perm).expand(3, -1)
    assert torch.equal(match_regions(query, key, most), expected)


def test_match_regions_ties_take_lowest_index():
    query = _maps(2, (2, 3))
    key = torch.ones(2, DIM, 3, 3)
    for most in ('similar', 'different'):
        assert torch.equal(
            match_regions(query, key, most),
            torch.zeros(2, 6, dtype=torch.long))


def test_match_regions_no_grad_and_bad_most():
    query = _maps(2, (3, 3), requires_grad=True)
    assert not match_regions(query, query).requires_grad
    with pytest.raises(ValueError, match='similar.*different'):
        match_regions(query, query, 'nearest')


@pytest.mark.parametrize('shapes', VIEW_SHAPES)
def test_matched_cosine_matches_loop(shapes):
    x, y = _maps(3, shapes[0]), _maps(3, shapes[1])
    n_x, n_y = (h * w for h, w in shapes)
    index = torch.randint(n_y, (3, n_x))
    cos = matched_cosine(x, y, index)
    assert cos.shape == (3, n_x)
    xf, yf = x.flatten(2), y.flatten(2)
    for b in range(3):
        for j in range(n_x):
            expected = _cos(xf[b, :, j], yf[b, :, index[b, j]])
            torch.testing.assert_close(cos[b, j], expected)
    with pytest.raises(ValueError, match='index must have shape'):
        matched_cosine(x, y, index[:, 1:])


@pytest.mark.parametrize('num_query,num_key', [(15, 49), (4, 4), (49, 49)])
def test_random_regions_shape_and_coverage(num_query, num_key):
    index = random_regions(num_query, num_key, 500)
    assert index.dtype == torch.long
    assert index.shape == (500, num_query)
    assert torch.equal(index.unique(), torch.arange(num_key))


@pytest.mark.parametrize('num', [2, 5, 49])
def test_random_regions_exclude_self(num):
    index = random_regions(num, num, 1000, exclude_self=True)
    own = torch.arange(num)
    assert index.shape == (1000, num)
    assert not (index == own).any()
    for j in range(num):
        others = own[own != j]
        assert torch.equal(index[:, j].unique(), others)


def test_random_regions_generator_and_errors():
    draws = [
        random_regions(
            9,
            9,
            4,
            exclude_self=True,
            generator=torch.Generator().manual_seed(3)) for _ in range(2)
    ]
    assert torch.equal(*draws)
    with pytest.raises(ValueError, match='num_query == num_key'):
        random_regions(4, 9, 2, exclude_self=True)
    with pytest.raises(ValueError, match='num_query == num_key'):
        random_regions(1, 1, 2, exclude_self=True)


@pytest.mark.parametrize('batch', [2, 3, 16])
def test_random_partners(batch):
    partner = torch.stack([random_partners(batch) for _ in range(300)])
    own = torch.arange(batch)
    assert partner.dtype == torch.long
    assert not (partner == own).any()
    for b in range(batch):
        assert torch.equal(partner[:, b].unique(), own[own != b])


def test_random_partners_needs_two_images():
    with pytest.raises(ValueError, match='at least 2 images'):
        random_partners(1)


@pytest.mark.parametrize('shapes', VIEW_SHAPES)
def test_rdem_loss_matches_loop(shapes):
    local_1 = _maps(2, shapes[0], requires_grad=True)
    local_2 = _maps(2, shapes[1], requires_grad=True)
    teacher_1, teacher_2 = _maps(2, shapes[0], 9), _maps(2, shapes[1], 9)
    idx_1 = _naive_match(teacher_1, teacher_1, 'different')
    idx_2 = _naive_match(teacher_2, teacher_2, 'different')
    loss = rdem_loss(local_1, local_2,
                     match_regions(teacher_1, teacher_1, 'different'),
                     match_regions(teacher_2, teacher_2, 'different'))
    expected = (_naive_mean_matched_cos(local_1, local_1, idx_1) +
                _naive_mean_matched_cos(local_2, local_2, idx_2)).mean()
    assert loss.dim() == 0 and -2 <= loss.item() <= 2
    torch.testing.assert_close(loss, expected)
    # The gradient flows into both sides of every pair, like the loop's.
    grads = torch.autograd.grad(loss, (local_1, local_2))
    expected_grads = torch.autograd.grad(expected, (local_1, local_2))
    for grad, expected_grad in zip(grads, expected_grads):
        assert grad.abs().sum() > 0
        torch.testing.assert_close(grad, expected_grad)


def test_rdem_loss_extremes():
    # Two opposite regions: R^D picks the other one, cos = -1 in both views.
    local = torch.randn(3, DIM, 1, 1)
    local = torch.cat([local, -2 * local], dim=3)
    index = match_regions(local, local, 'different')
    torch.testing.assert_close(
        rdem_loss(local, local, index, index), torch.tensor(-2.))
    # Identical regions: every pair has cos = 1.
    same = torch.randn(3, DIM, 1, 1).expand(-1, -1, 2, 3)
    index = random_regions(6, 6, 3, exclude_self=True)
    torch.testing.assert_close(
        rdem_loss(same, same, index, index), torch.tensor(2.))


def test_rdem_loss_rejects_wrong_index_shape():
    local = _maps(2, (3, 3))
    index = random_regions(9, 9, 2)
    with pytest.raises(ValueError, match=r'index must have shape \(2, 9\)'):
        rdem_loss(local, local, index[:, 1:], index)


@pytest.mark.parametrize('shapes', VIEW_SHAPES)
def test_riem_loss_matches_loop(shapes):
    online_1 = _maps(2, shapes[0], requires_grad=True)
    online_2 = _maps(2, shapes[1], requires_grad=True)
    target_1 = _maps(2, shapes[0], requires_grad=True)
    target_2 = _maps(2, shapes[1], requires_grad=True)
    teacher_1, teacher_2 = _maps(2, shapes[0], 9), _maps(2, shapes[1], 9)
    idx_1 = _naive_match(teacher_1, teacher_2, 'similar')
    idx_2 = _naive_match(teacher_2, teacher_1, 'similar')
    loss = riem_loss(online_1, online_2, target_1, target_2,
                     match_regions(teacher_1, teacher_2, 'similar'),
                     match_regions(teacher_2, teacher_1, 'similar'))
    expected = (2 - _naive_mean_matched_cos(online_1, target_2, idx_1) -
                _naive_mean_matched_cos(online_2, target_1, idx_2)).mean()
    assert loss.dim() == 0 and 0 <= loss.item() <= 4
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert target_1.grad is None and target_2.grad is None
    assert online_1.grad.abs().sum() > 0 and online_2.grad.abs().sum() > 0


def test_riem_loss_identical_views_is_zero():
    # With every map equal, eq. 6 matches each region to itself (cos = 1).
    x = _maps(3, (3, 5))
    index = match_regions(x, x, 'similar')
    torch.testing.assert_close(
        riem_loss(x, x, x, x, index, index),
        torch.tensor(0.),
        atol=1e-6,
        rtol=0)
    # Matching each region to the most *different* one instead cannot be 0.
    index = match_regions(x, x, 'different')
    assert riem_loss(x, x, x, x, index, index) > 1


@pytest.mark.parametrize('shapes', VIEW_SHAPES)
def test_rdem_instance_loss_matches_loop(shapes):
    local_1 = _maps(4, shapes[0], requires_grad=True)
    local_2 = _maps(4, shapes[1], requires_grad=True)
    global_1, global_2 = torch.randn(2, 4, DIM, requires_grad=True).unbind(0)
    partner = random_partners(4)
    loss = rdem_instance_loss(local_1, local_2, global_1, global_2, partner)
    # Regions of view 1 against the target embedding of view 2 of the
    # partner image, and conversely; one partner for all regions.
    expected = 0
    for local, glob in ((local_1, global_2), (local_2, global_1)):
        flat = local.flatten(2)
        expected += torch.stack([
            torch.stack([
                _cos(flat[b, :, j], glob[partner[b]])
                for j in range(flat.size(2))
            ]).mean() for b in range(4)
        ])
    assert loss.dim() == 0 and -2 <= loss.item() <= 2
    torch.testing.assert_close(loss, expected.mean())
    # The negatives are constants (detached target embeddings).
    grads = torch.autograd.grad(
        loss, (local_1, global_1, global_2), allow_unused=True)
    assert grads[0].abs().sum() > 0
    assert grads[1] is None and grads[2] is None


def test_rdem_instance_loss_uses_partner():
    glob = torch.randn(2, DIM)
    # Every region of image b equals the global embedding of image b.
    local = glob.view(2, DIM, 1, 1).expand(-1, -1, 2, 2)
    own = rdem_instance_loss(local, local, glob, glob, torch.arange(2))
    other = rdem_instance_loss(local, local, glob, glob, random_partners(2))
    torch.testing.assert_close(own, torch.tensor(2.))
    torch.testing.assert_close(other, 2 * _cos(glob[0], glob[1]))


def test_losses_under_bf16_autocast():
    shapes = VIEW_SHAPES[0]
    maps = [_maps(4, hw) for hw in shapes] * 3
    vecs = list(torch.randn(4, 4, DIM).unbind(0))
    partner = random_partners(4)
    index = [
        match_regions(maps[0], maps[0], 'different'),
        match_regions(maps[1], maps[1], 'different'),
        match_regions(maps[0], maps[1], 'similar'),
        match_regions(maps[1], maps[0], 'similar')
    ]

    def losses(maps, vecs):
        return torch.stack([
            byol_loss(*vecs),
            rdem_loss(*maps[:2], *index[:2]),
            riem_loss(*maps[:4], *index[2:]),
            rdem_instance_loss(*maps[:2], *vecs[:2], partner)
        ])

    fp32 = losses(maps, vecs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        same_inputs = losses(maps, vecs)
        # bf16 features, as produced by layers run under autocast; the
        # regions are matched on the bf16-rounded teacher maps in both runs.
        rounded = [m.bfloat16() for m in maps]
        bf16 = losses(rounded, [v.bfloat16() for v in vecs])
    reference = losses([m.float() for m in rounded], vecs)
    assert same_inputs.dtype == bf16.dtype == torch.float32
    torch.testing.assert_close(same_inputs, fp32)
    torch.testing.assert_close(bf16, reference, atol=2e-2, rtol=0)


def test_match_regions_under_bf16_autocast():
    # Near-ties: key regions are tiny perturbations of one another, so a
    # bf16 similarity would often pick another region.
    query = _maps(2, (7, 7), dim=64)
    key = query.flatten(2)[:, :, :1] + 1e-3 * torch.randn(2, 64, 49)
    key = key.view_as(query)
    for most in ('similar', 'different'):
        expected = match_regions(query, key, most)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert torch.equal(match_regions(query, key, most), expected)
