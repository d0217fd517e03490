"""StackedAdam: run k of a stack steps as torch's Adam on run k alone, whatever the runs' rates."""
import pytest
import torch

from ensemble_nets.training.stacked_adam import ParameterStack, StackedAdam


@pytest.mark.parametrize("lrs", [[0.1, 0.1, 0.1], [0.1, 0.03, 0.01]])  # shared rate; a rate sweep (one pass)
@pytest.mark.parametrize("decoupled", [True, False])
def test_each_run_steps_as_torch_adam_alone(lrs, decoupled):
    torch.manual_seed(0)
    stacked = torch.nn.ParameterDict({"w": torch.nn.Parameter(torch.randn(3, 4, 5)),
                                      "b": torch.nn.Parameter(torch.randn(3, 5))})
    alone = [{n: torch.nn.Parameter(p[k].detach().clone()) for n, p in stacked.items()} for k in range(3)]
    decays = [{"w": 0.1, "b": 0.0}] * 3
    adam = StackedAdam(ParameterStack.of(stacked), decays, [decoupled] * 3)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    optimizers = [cls([{"params": [run["w"]], "weight_decay": 0.1}, {"params": [run["b"]], "weight_decay": 0.0}],
                      lr=lr) for run, lr in zip(alone, lrs)]
    for step in range(5):
        target = torch.randn(3, 4)
        loss = ((torch.einsum("kij,kj->ki", stacked["w"], stacked["b"]) - target) ** 2).sum()
        adam.zero_grad()
        loss.backward()
        adam.step(lrs)
        for k, (run, opt) in enumerate(zip(alone, optimizers)):
            opt.zero_grad()
            ((run["w"] @ run["b"] - target[k]) ** 2).sum().backward()
            opt.step()
    for k, run in enumerate(alone):
        for name in ("w", "b"):
            torch.testing.assert_close(stacked[name][k], run[name], rtol=1e-5, atol=1e-6)
    assert adam.steps == [5, 5, 5]


def test_parameter_stack_needs_one_run_axis():
    with pytest.raises(ValueError, match="same leading run axis"):
        ParameterStack.of(torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.zeros(2, 3)),
                                                  "b": torch.nn.Parameter(torch.zeros(3))}))
