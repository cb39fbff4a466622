"""The RL half of the PPO loss, pinned by behaviour.

Each test runs ``ppo_update`` on a *table* policy: one row of logits and one value per state, and one state
per sample. A sample's gradient then lands only on its own row, so "this sample gets no gradient" can be
checked exactly. Plain SGD (no Adam rescaling) and a huge ``max_grad_norm`` keep updates proportional to the
gradient. Each test fails under one of these edits of algos/ppo.py: ``max`` -> ``min`` in the policy loss, the
ratio left unclipped, the entropy sign flipped, the policy loss negated, advantage normalisation removed,
``max`` -> ``min`` in the value loss.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from algos.buffer import RolloutBuffer
from algos.ppo import ppo_update
from utils.config import PPOSettings

NUM_ACTIONS = 4
CLIP = 0.2


class TablePolicy(nn.Module):
    """Logits and value looked up by state index; observations are ``(N, 1)`` state indices."""

    recurrent = False

    def __init__(self, logits: torch.Tensor, values: torch.Tensor | None = None):
        super().__init__()
        self.logits = nn.Parameter(logits.clone().float())
        self.values = nn.Parameter(torch.zeros(len(logits)) if values is None else values.clone().float())

    def prepare(self, obs: torch.Tensor) -> tuple[torch.Tensor]:
        return (obs[:, 0].long(),)

    def forward(self, obs, state=None, episode_starts=None):
        index = obs[0] if isinstance(obs, tuple) else obs[:, 0].long()
        return self.logits[index], self.values[index], None

    def log_pi(self, actions: torch.Tensor) -> torch.Tensor:
        """log pi(actions[s] | s) for every state s."""
        with torch.no_grad():
            return torch.log_softmax(self.logits, -1).gather(1, actions.view(-1, 1)).squeeze(1)

    def entropy(self) -> torch.Tensor:
        with torch.no_grad():
            log_p = torch.log_softmax(self.logits, -1)
            return -(log_p.exp() * log_p).sum(-1)


def settings(**overrides) -> PPOSettings:
    """One epoch over one minibatch with no entropy bonus and no gradient clipping, unless overridden."""
    values = dict(lr=0.1, clip_coef=CLIP, ent_coef=0.0, vf_coef=0.5, max_grad_norm=1e9, update_epochs=1,
                  num_minibatches=1, norm_adv=False)
    values.update(overrides)
    return PPOSettings(**values)


def rollout(actions, advantages, old_logprobs, old_values=None, returns=None) -> RolloutBuffer:
    """A buffer whose sample ``s`` was taken in state ``s`` (one env, ``len(actions)`` steps)."""
    n = len(actions)
    buffer = RolloutBuffer(n, 1, (1,), NUM_ACTIONS, torch.int64)
    buffer.obs[:, 0, 0] = torch.arange(n)
    buffer.actions[:, 0] = torch.as_tensor(actions)
    buffer.logprobs[:, 0] = torch.as_tensor(old_logprobs, dtype=torch.float32)
    buffer.advantages[:, 0] = torch.as_tensor(advantages, dtype=torch.float32)
    buffer.values[:, 0] = torch.zeros(n) if old_values is None else torch.as_tensor(old_values, dtype=torch.float32)
    buffer.returns[:, 0] = buffer.values[:, 0] if returns is None else torch.as_tensor(returns, dtype=torch.float32)
    return buffer


def update(model: TablePolicy, buffer: RolloutBuffer, ppo: PPOSettings, distill_coef: float = 0.0) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=ppo.lr)
    return ppo_update(model, optimizer, buffer, ppo, distill_coef, torch.Generator().manual_seed(0))


def random_logits(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, NUM_ACTIONS, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("normalize", [False, True])
def test_policy_gradient_raises_positive_advantage_actions_and_lowers_negative_ones(normalize):
    model = TablePolicy(random_logits(4))
    actions = torch.tensor([0, 1, 2, 3])
    advantages = torch.tensor([1.0, 2.0, -1.0, -2.0])
    before = model.log_pi(actions)
    update(model, rollout(actions, advantages, before), settings(norm_adv=normalize))
    change = model.log_pi(actions) - before
    assert (change[:2] > 1e-3).all(), f"pi(a) must rise where the advantage is positive: {change}"
    assert (change[2:] < -1e-3).all(), f"pi(a) must fall where the advantage is negative: {change}"
    assert change[1] > change[0] and change[3] < change[2], "a larger advantage moves pi(a) further"


def test_no_gradient_for_samples_already_pushed_past_the_clip_range():
    """The pessimistic (max) bound: a ratio outside [1 - clip, 1 + clip] on the side the advantage pushes
    towards gets exactly zero gradient; on the other side it is still pulled back."""
    model = TablePolicy(random_logits(4, seed=1))
    actions = torch.tensor([0, 1, 2, 3])
    ratios = torch.tensor([1.5, 0.5, 0.5, 1.5])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    old_logprobs = model.log_pi(actions) - ratios.log()  # pi_new / pi_old = ratios
    update(model, rollout(actions, advantages, old_logprobs), settings(lr=0.0))
    grad = model.logits.grad
    assert torch.equal(grad[0], torch.zeros(NUM_ACTIONS)), "ratio 1.5 > 1 + clip with A > 0: no further push"
    assert torch.equal(grad[2], torch.zeros(NUM_ACTIONS)), "ratio 0.5 < 1 - clip with A < 0: no further push"
    # Gradient descent raises pi(a) where d loss / d logit_a < 0.
    assert grad[1, actions[1]] < 0, "ratio 0.5 with A > 0: pi(a) is still raised back towards the range"
    assert grad[3, actions[3]] > 0, "ratio 1.5 with A < 0: pi(a) is still lowered back towards the range"


def test_many_epochs_do_not_push_the_ratio_much_past_the_clip_range():
    model = TablePolicy(torch.zeros(2, NUM_ACTIONS))  # pi(a) = 1/4: unclipped, the ratio could reach 4
    actions = torch.tensor([0, 1])
    old_logprobs = model.log_pi(actions)
    update(model, rollout(actions, [1.0, -1.0], old_logprobs), settings(lr=0.1, update_epochs=60))
    ratio = (model.log_pi(actions) - old_logprobs).exp()
    assert 1 + CLIP <= ratio[0] < 1 + CLIP + 0.1, f"positive advantage: ratio {ratio[0]:.3f}"
    assert 1 - CLIP - 0.1 < ratio[1] <= 1 - CLIP, f"negative advantage: ratio {ratio[1]:.3f}"


def test_entropy_bonus_raises_entropy_when_advantages_are_zero():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 3.0, 0.0, 0.0], [1.0, 1.0, -2.0, 0.0]])
    model = TablePolicy(logits)
    actions = torch.tensor([0, 1, 3])
    before = model.entropy()
    stats = update(model, rollout(actions, [0.0, 0.0, 0.0], model.log_pi(actions)),
                   settings(lr=1.0, ent_coef=0.5, norm_adv=True))
    assert (model.entropy() > before + 1e-3).all(), f"entropy {before} -> {model.entropy()}"
    assert stats["entropy"] == pytest.approx(before.mean().item(), rel=1e-5)


def _update_with(advantages: torch.Tensor, normalize: bool) -> torch.Tensor:
    model = TablePolicy(random_logits(len(advantages), seed=2))
    actions = torch.arange(len(advantages)) % NUM_ACTIONS
    update(model, rollout(actions, advantages, model.log_pi(actions)), settings(norm_adv=normalize))
    return model.logits.detach()


def test_normalised_advantages_make_the_update_independent_of_their_scale_and_offset():
    advantages = torch.tensor([0.3, 1.2, -0.4, 2.0, 0.1, -1.5])
    reference = _update_with(advantages, normalize=True)
    torch.testing.assert_close(_update_with(advantages * 1000, normalize=True), reference)
    torch.testing.assert_close(_update_with(advantages + 5.0, normalize=True), reference)
    # the same comparison tells the difference when normalisation is off
    assert not torch.allclose(_update_with(advantages * 1000, normalize=False), reference, atol=1e-3)


def test_value_clipping_takes_the_larger_loss():
    """Values that moved more than clip from the rollout's estimate: towards the return the clipped loss is
    larger and flat, so no gradient; away from the return the unclipped loss is larger and pulls back."""
    current = torch.tensor([1.0, -1.0, 0.1])
    returns = torch.tensor([2.0, 2.0, 2.0])
    model = TablePolicy(torch.zeros(3, NUM_ACTIONS), current)
    actions = torch.tensor([0, 0, 0])
    vf_coef = 0.5
    update(model, rollout(actions, [0.0, 0.0, 0.0], model.log_pi(actions), old_values=[0.0, 0.0, 0.0],
                          returns=returns), settings(lr=0.0, vf_coef=vf_coef))
    grad = model.values.grad
    assert grad[0] == 0, "moved 1.0 towards the return (clip 0.2): the clipped loss (1.8^2) wins, flat"
    # d/dv of vf_coef * 0.5 * (v - R)^2 / n
    expected = vf_coef * (current - returns) / len(current)
    assert grad[1].item() == pytest.approx(expected[1].item()), "moved away from the return: pulled back"
    assert grad[2].item() == pytest.approx(expected[2].item()), "inside the clip range: the plain squared error"
