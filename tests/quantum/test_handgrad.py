"""The hand-written backward passes against autograd's finite-difference check, and the gate
matrices against PennyLane's."""

import pennylane as qml
import pytest
import torch

from hqray.quantum.handgrad import ROTATION_NAMES, ProductState, TreeProduct, rotation_matrices

WIRES = {"RX": 1, "RY": 1, "CRX": 2, "CRY": 2, "IsingXX": 2, "IsingYY": 2, "Rot": 1}


@pytest.mark.parametrize("name", sorted(ROTATION_NAMES))
def test_rotation_matrices_equal_pennylane_and_pass_gradcheck(name):
    generator = torch.Generator().manual_seed(3)
    n_params = 3 if name == "Rot" else 1
    params = [(torch.rand(3, 2, generator=generator, dtype=torch.float64) * 12 - 6).requires_grad_(True)
              for _ in range(n_params)]
    ours = rotation_matrices(name, *params)
    assert ours.shape == (3, 2, 2 ** WIRES[name], 2 ** WIRES[name]) and ours.dtype == torch.complex128
    for index in [(0, 0), (1, 1), (2, 0)]:
        values = [float(p[index]) for p in params]
        expected = qml.matrix(getattr(qml, name)(*values, wires=range(WIRES[name])))
        torch.testing.assert_close(ours[index], torch.as_tensor(expected), atol=1e-14, rtol=0)
    assert torch.autograd.gradcheck(lambda *p: rotation_matrices(name, *p), tuple(params))
    single = rotation_matrices(name, *[p.detach().float() for p in params])
    assert single.dtype == torch.complex64


def test_product_state_gradients_pass_gradcheck_with_and_without_first_columns():
    generator = torch.Generator().manual_seed(5)
    pool = torch.randn(7, 3, 2, 2, generator=generator, dtype=torch.complex128).requires_grad_(True)
    depths = [(torch.tensor([0, 2]), torch.tensor([3, 4])), (torch.tensor([1]), torch.tensor([5]))]
    first = torch.tensor([0, 1, 2])
    state = ProductState.apply(pool, first, depths, 3)
    vectors = [pool[0, :, :, 0], pool[5] @ pool[1, :, :, 0, None], pool[4] @ pool[2, :, :, 0, None]]
    vectors = [v.reshape(3, 2) for v in vectors]
    vectors[0] = (pool[3] @ vectors[0][..., None])[..., 0]
    expected = torch.einsum("ri,rj,rk->rijk", *vectors).reshape(3, 8)
    torch.testing.assert_close(state, expected, atol=1e-14, rtol=0)
    assert torch.autograd.gradcheck(lambda p: ProductState.apply(p, first, depths, 3), (pool,))
    assert torch.autograd.gradcheck(lambda p: ProductState.apply(p, None, depths, 3), (pool,))


def test_tree_product_multiplies_later_slots_on_the_left_and_passes_gradcheck():
    generator = torch.Generator().manual_seed(7)
    matrices = torch.randn(2, 8, 4, 4, generator=generator, dtype=torch.complex128).requires_grad_(True)
    expected = [torch.linalg.multi_dot(list(matrices[s].flip(0))) for s in range(2)]
    torch.testing.assert_close(TreeProduct.apply(matrices), torch.stack(expected), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(TreeProduct.apply, (matrices,))
