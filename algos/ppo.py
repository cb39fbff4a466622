"""PPO with a teacher-distillation term.

loss = clipped policy loss + vf_coef * clipped value loss - ent_coef * entropy + coef * distillation,
where distillation = -(teacher_probs * log_softmax(student_logits)).sum(-1).mean(): the cross-entropy from
the teacher's action distribution to the student's, on the states the student visited.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from algos.buffer import RolloutBuffer
from algos.student import device_of
from utils.config import PPOSettings

STAT_NAMES = ("policy", "value", "entropy", "distill", "approx_kl", "clipfrac")


def distillation_loss(student_log_probs: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the teacher's distribution to the student's (given as log-softmax), averaged over
    states."""
    return -(teacher_probs * student_log_probs).sum(-1).mean()


def ppo_update(model: nn.Module, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
               settings: PPOSettings, distill_coef: float, generator: torch.Generator) -> dict[str, float]:
    """Run the PPO epochs on one rollout; returns mean losses and diagnostics for logging.

    The rollout moves to the model's device once, here; the diagnostics are read back once, at the end.
    """
    rollout = buffer.to(device_of(model))
    recurrent = getattr(model, "recurrent", False)
    inputs = _prepared_inputs(model, rollout)
    stats: list[torch.Tensor] = []  # one row of STAT_NAMES per minibatch, on the device
    for _ in range(settings.update_epochs):
        for mb in rollout.minibatches(settings.num_minibatches, generator, recurrent, inputs):
            logits, values, _ = model(mb.obs, mb.initial_state, mb.episode_starts)
            log_probs = F.log_softmax(logits, dim=-1)
            new_logprobs = log_probs.gather(1, mb.actions.unsqueeze(1)).squeeze(1)
            entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
            log_ratio = new_logprobs - mb.logprobs
            ratio = log_ratio.exp()

            advantages = mb.advantages
            if settings.norm_adv and advantages.numel() > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = torch.max(-advantages * ratio,
                                    -advantages * ratio.clamp(1 - settings.clip_coef, 1 + settings.clip_coef)).mean()
            values_clipped = mb.values + (values - mb.values).clamp(-settings.clip_coef, settings.clip_coef)
            value_loss = 0.5 * torch.max((values - mb.returns) ** 2, (values_clipped - mb.returns) ** 2).mean()

            loss = policy_loss + settings.vf_coef * value_loss - settings.ent_coef * entropy
            distill = distillation_loss(log_probs, mb.teacher_probs) if distill_coef > 0 else None
            if distill is not None:
                loss = loss + distill_coef * distill

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm, foreach=True)
            optimizer.step()

            with torch.no_grad():
                stats.append(torch.stack([policy_loss, value_loss, entropy,
                                          distill if distill is not None else torch.zeros_like(policy_loss),
                                          ((ratio - 1) - log_ratio).mean(),
                                          ((ratio - 1).abs() > settings.clip_coef).float().mean()]))
    # Means of the float32 values as Python floats, as one .item() per value would give them.
    columns = np.array(torch.stack(stats).cpu().tolist()).T
    return {name: float(np.mean(column)) for name, column in zip(STAT_NAMES, columns)}


def _prepared_inputs(model: nn.Module, buffer: RolloutBuffer) -> tuple[torch.Tensor, ...]:
    """The model's parameter-free input work (its ``prepare``) for the whole rollout, done once
    instead of once per minibatch and epoch."""
    lead = buffer.obs.shape[:2]
    with torch.no_grad():
        prepared = model.prepare(buffer.obs.reshape((-1,) + buffer.obs.shape[2:]))
    return tuple(tensor.reshape(lead + tensor.shape[1:]) for tensor in prepared)
