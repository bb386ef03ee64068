"""UniVIP's losses and Sinkhorn solver against plain float64 loops written
from the paper's printed equations (eqs. 1-8 of
``../shared/papers/univip_figures``; these are the functions UniVIPHead
trains with)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ediy_mm.models.losses import (instance_cost, instance_loss,
                                   instance_marginals, pair_loss,
                                   scene_instance_loss, scene_loss, sinkhorn)

SHAPES = [(4, 4), (3, 5), (6, 2)]


def _cos(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def reference_sinkhorn(cost, a, b, eps, num_iters=None, tol=1e-10):
    """Textbook Sinkhorn-Knopp in float64 (scaling vectors, no logs), one
    problem, then Altschuler et al.'s rounding, written with loops.
    ``num_iters=None`` iterates to convergence."""
    cost, a, b = (np.asarray(x, np.float64) for x in (cost, a, b))
    kernel = np.exp(-cost / eps)
    v = np.ones(len(b))
    for it in range(num_iters or 20000):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
        if num_iters is None and it % 50 == 0 and np.abs(u * (kernel @ v) -
                                                         a).max() < tol:
            break
    plan = u[:, None] * kernel * v[None, :]
    rows, cols = plan.shape
    for i in range(rows):
        if plan[i].sum() > 0:
            plan[i] *= min(a[i] / plan[i].sum(), 1)
    for j in range(cols):
        if plan[:, j].sum() > 0:
            plan[:, j] *= min(b[j] / plan[:, j].sum(), 1)
    err_a = [a[i] - plan[i].sum() for i in range(rows)]
    err_b = [b[j] - plan[:, j].sum() for j in range(cols)]
    for i in range(rows):
        for j in range(cols):
            if sum(err_a) > 0:
                plan[i, j] += err_a[i] * err_b[j] / sum(err_a)
    return plan


def problems(rows, cols, batch=16, seed=0, spread=0.01):
    """Costs ``1 - cos`` of random embeddings and uneven positive
    marginals (masses down to ``spread``-ish relative to others)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, rows, 8, generator=g)
    y = torch.randn(batch, cols, 8, generator=g)
    cost = 1 - F.cosine_similarity(x[:, :, None], y[:, None], dim=-1)
    a = torch.rand(batch, rows, generator=g) + spread
    b = torch.rand(batch, cols, generator=g) + spread
    return cost, a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)


@pytest.mark.parametrize('rows,cols', SHAPES)
def test_sinkhorn_plan_has_the_marginals(rows, cols):
    cost, a, b = problems(rows, cols)
    plan = sinkhorn(cost, a, b)  # OTA's eps 0.1, 50 iterations
    assert plan.shape == (16, rows, cols) and (plan >= 0).all()
    torch.testing.assert_close(plan.sum(2), a, rtol=0, atol=1e-4)
    torch.testing.assert_close(plan.sum(1), b, rtol=0, atol=1e-4)


@pytest.mark.parametrize('rows,cols', SHAPES)
@pytest.mark.parametrize('eps', [0.1, 0.05, 0.02, 0.01])
def test_sinkhorn_matches_the_reference_in_float32(rows, cols, eps):
    """Same iterations as the float64 reference, and stable in float32
    down to eps = 0.01 (where exp(-C / eps) reaches 1e-87)."""
    cost, a, b = problems(rows, cols, batch=8, seed=rows)
    plan = sinkhorn(cost.float(), a.float(), b.float(), eps, 50)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan.sum(2), a, rtol=0, atol=1e-4)
    for k in range(len(cost)):
        ref = reference_sinkhorn(cost[k], a[k], b[k], eps, 50)
        np.testing.assert_allclose(plan[k].numpy(), ref, rtol=0, atol=1e-5)


def test_sinkhorn_converges_to_the_entropic_optimum():
    cost, a, b = problems(4, 4, batch=4, seed=3, spread=0.5)
    plan = sinkhorn(cost, a, b, 0.1, 500)
    for k in range(len(cost)):
        ref = reference_sinkhorn(cost[k], a[k], b[k], 0.1)  # converged
        np.testing.assert_allclose(plan[k].numpy(), ref, rtol=0, atol=1e-5)


def test_sinkhorn_takes_zero_masses():
    """Eq. 7 clips at 0: a zero mass has an empty row / column, and the
    other marginals are met as with positive masses."""
    cost, a, b = problems(4, 5, batch=4, seed=7)
    a[:, 1] = 0
    b[:, 3] = 0
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    plan = sinkhorn(cost, a, b)
    assert torch.isfinite(plan).all()
    assert (plan[:, 1] == 0).all() and (plan[:, :, 3] == 0).all()
    torch.testing.assert_close(plan.sum(2), a, rtol=0, atol=1e-6)
    torch.testing.assert_close(plan.sum(1), b, rtol=0, atol=1e-6)
    for k in range(len(cost)):
        np.testing.assert_allclose(
            plan[k].numpy(),
            reference_sinkhorn(cost[k], a[k], b[k], 0.1, 50),
            rtol=0,
            atol=1e-5)


def test_sinkhorn_refuses_bad_input():
    cost, a, b = problems(4, 4, batch=2)
    with pytest.raises(ValueError, match='positive total mass'):
        sinkhorn(cost, torch.zeros_like(a), b)
    with pytest.raises(ValueError, match='non-negative'):
        sinkhorn(cost, a - 0.5, b)
    with pytest.raises(ValueError, match='same mass'):
        sinkhorn(cost, a * 2, b)
    with pytest.raises(ValueError, match=r'\[B, M\]'):
        sinkhorn(cost, a[:, :3], b)
    with pytest.raises(ValueError, match='eps'):
        sinkhorn(cost, a, b, eps=0)


def embeddings(batch=3, num=4, dim=6, seed=0, grad=False, scale=1.):
    """Random embeddings of uneven norms (raw projections are not unit
    vectors: eq. 7 sees their norms)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, num, dim, generator=g)
    x = x * (scale * torch.rand(batch, num, 1, generator=g) + 0.1)
    return x.requires_grad_(grad)


def scene_pair(seed, grad=False, batch=3):
    """The two scene embeddings of a branch, ``[B, D]`` each."""
    return [
        embeddings(batch, num=1, seed=seed + s)[:, 0].requires_grad_(grad)
        for s in (0, 1)
    ]


def printed_marginals(instances, scene_1, scene_2):
    """Eq. 7 as printed, one image: b_m = max{o_m^T (f_1 + f_2) / 2, 0}
    with loops over m and the coordinates, normalised to sum to 1 (uniform
    when every b_m is 0)."""
    instances = np.asarray(instances, np.float64)
    mean = [(float(x) + float(y)) / 2 for x, y in zip(scene_1, scene_2)]
    weights = []
    for o in instances:
        dot = sum(float(o[d]) * mean[d] for d in range(len(mean)))
        weights.append(max(dot, 0.))
    total = sum(weights)
    if total == 0:
        return np.full(len(weights), 1 / len(weights))
    return np.array(weights) / total


def printed_instance_loss(online,
                          target,
                          online_scenes,
                          target_scenes,
                          eps=0.1):
    """Eqs. 6-8 with loops: -sum_mn cos(o_m, t_n) y_mn, the plan from the
    cost 1 - cos and the marginals of eq. 7, averaged over images."""
    losses = []
    for b in range(len(online)):
        o = online[b].detach().numpy()
        t = target[b].detach().numpy()
        cos = np.array([[_cos(om, tn) for tn in t] for om in o])
        rows = printed_marginals(o, *(s[b].detach() for s in target_scenes))
        cols = printed_marginals(t, *(s[b].detach() for s in online_scenes))
        plan = reference_sinkhorn(1 - cos, rows, cols, eps, 50)
        losses.append(-sum(cos[m, n] * plan[m, n] for m in range(len(o))
                           for n in range(len(t))))
    return float(np.mean(losses))


def test_marginals_are_the_printed_clipped_dot_product():
    inst = embeddings(batch=6, num=5, scale=3.)
    scenes = scene_pair(10, batch=6)
    got = instance_marginals(inst, scenes)
    assert got.dtype == torch.float32 and not got.requires_grad
    for b in range(len(inst)):
        np.testing.assert_allclose(
            got[b].numpy(),
            printed_marginals(inst[b], scenes[0][b], scenes[1][b]),
            rtol=1e-5,
            atol=1e-7)
    # a dot product, not a cosine: tripling an instance's norm triples its
    # weight relative to the others (a cosine would not change it)
    longer = inst.clone()
    longer[:, 0] *= 3
    old, new = (instance_marginals(x, scenes) for x in (inst, longer))
    pairs = (old[:, :1] > 0) & (old[:, 1:] > 0)
    assert pairs.any()
    torch.testing.assert_close((new[:, :1] / new[:, 1:])[pairs],
                               3 * (old[:, :1] / old[:, 1:])[pairs])
    # clipped at 0, and uniform where nothing is positive
    negative = -inst.abs()
    positive_mean = [s.abs() for s in scenes]
    np.testing.assert_allclose(
        instance_marginals(negative, positive_mean).numpy(), 1 / 5)
    with pytest.raises(ValueError, match='two scene embeddings'):
        instance_marginals(inst, scenes[:1])


def test_pair_and_scene_losses_are_the_printed_negative_cosines():
    online, target = scene_pair(0, grad=True), scene_pair(2)
    expected_12 = np.mean(
        [-_cos(online[0][b].detach(), target[1][b]) for b in range(3)])
    assert pair_loss(online[0], target[1]).item() == pytest.approx(
        expected_12, abs=1e-6)
    expected = expected_12 + np.mean(
        [-_cos(online[1][b].detach(), target[0][b]) for b in range(3)])
    loss = scene_loss(*online, *target)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    target[0].requires_grad_()
    scene_loss(*online, *target).backward()
    assert target[0].grad is None  # g is the momentum target: no gradient


def test_scene_instance_loss_matches_a_loop():
    k, dim, out = 4, 6, 5
    inst = embeddings(num=k, dim=dim, grad=True)
    scenes = [torch.randn(3, out) for _ in range(2)]
    weight, bias = torch.randn(out, k * dim), torch.randn(out)
    loss = scene_instance_loss(inst, *scenes, weight, bias)
    total = 0.
    for b in range(3):
        concat = np.concatenate(
            [inst[b, m].detach().numpy() for m in range(k)])
        fused = weight.numpy().astype(np.float64) @ concat + bias.numpy()
        total += sum(-_cos(fused, s[b].numpy()) for s in scenes)
    assert loss.item() == pytest.approx(total / 3, abs=1e-5)
    with pytest.raises(ValueError, match='num_instances x embedding'):
        scene_instance_loss(inst, *scenes, weight[:, 1:], bias)
    with pytest.raises(ValueError, match=r'\[B, K, D\]'):
        scene_instance_loss(inst[0], *scenes, weight, bias)


def test_instance_loss_matches_the_printed_loop_and_the_plan_has_no_grad():
    online = embeddings(seed=0, grad=True, scale=2.)
    target = embeddings(seed=1, scale=2.)
    online_scenes = scene_pair(4, grad=True)
    target_scenes = scene_pair(6)
    loss = instance_loss(online, target, online_scenes, target_scenes)
    assert loss.item() == pytest.approx(
        printed_instance_loss(online, target, online_scenes, target_scenes),
        abs=1e-5)

    # The plan is a constant: the gradient is that of -sum cos * plan with
    # the plan fixed, and none reaches the scene embeddings (marginals).
    loss.backward()
    assert all(s.grad is None for s in online_scenes)
    o = online.detach().requires_grad_()
    cos, cost = instance_cost(o, target)
    torch.testing.assert_close(
        cos, F.cosine_similarity(o[:, :, None], target[:, None], dim=-1))
    plan = sinkhorn(cost, instance_marginals(o, target_scenes),
                    instance_marginals(target, online_scenes))
    assert not plan.requires_grad
    (-(cos * plan).sum((1, 2)).mean()).backward()
    torch.testing.assert_close(online.grad, o.grad)


def test_cosines_stay_float32_under_autocast():
    online, target = embeddings(grad=True), embeddings(seed=1)
    scenes = scene_pair(2), scene_pair(4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = instance_loss(online, target, *scenes)
        pair = pair_loss(online[:, 0], target[:, 0])
    assert loss.dtype == pair.dtype == torch.float32
    assert loss.item() == pytest.approx(
        instance_loss(online, target, *scenes).item(), abs=1e-6)
