"""Student network, GAE, the distillation term and its schedule."""
import numpy as np
import pytest
import torch
from conftest import KEY, room_obs

from algos.buffer import RolloutBuffer
from algos.model import ActorCritic, EgocentricCrop
from algos.ppo import distillation_loss, ppo_update
from utils.config import ConfigError, PPOSettings, ScheduleSettings, build_config


def test_model_shapes_for_maps_vectors_and_lstm():
    obs = torch.from_numpy(np.stack([room_obs(10, 10), room_obs(10, 10, agent=(5, 5), direction=2)]))
    logits, values, state = ActorCritic((4, 10, 10), 7)(obs)
    assert logits.shape == (2, 7) and values.shape == (2,) and state is None
    stacked = ActorCritic((8, 10, 10), 7)(torch.cat([obs, obs], 1))[0]
    assert stacked.shape == (2, 7)
    recurrent = ActorCritic((4, 10, 10), 7, recurrent=True)
    state = recurrent.initial_state(2)
    sequence = torch.cat([obs, obs])  # 2 steps x 2 envs, time-major
    logits, values, state = recurrent(sequence, state, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert logits.shape == (4, 7) and state[0].shape == (1, 2, 128)
    vector_logits = ActorCritic((12,), 5)(torch.zeros(3, 12))[0]
    assert vector_logits.shape == (3, 5)


@pytest.mark.parametrize("shape, ego_size", [((4, 10, 10), 11), ((4, 10, 10), 0), ((12,), 0)])
def test_prepared_inputs_give_the_same_outputs_as_observations(shape, ego_size):
    torch.manual_seed(0)
    model = ActorCritic(shape, 7, ego_size=ego_size)
    if len(shape) == 3:
        obs = torch.from_numpy(np.stack([room_obs(10, 10), room_obs(10, 10, agent=(5, 5), direction=2,
                                                                    objects=[(KEY, "red", (6, 5), 0)])]))
    else:
        obs = torch.rand(2, shape[0])
    direct_logits, direct_values, _ = model(obs)
    prepared = model.prepare(obs)
    assert all(tensor.shape[0] == 2 for tensor in prepared)
    logits, values, _ = model(prepared)
    torch.testing.assert_close(logits, direct_logits)
    torch.testing.assert_close(values, direct_values)
    # rows of a prepared batch stand for the same rows of observations
    torch.testing.assert_close(model(tuple(t[1:] for t in prepared))[0], model(obs[1:])[0])


def test_minibatches_of_prepared_inputs_line_up_with_their_transitions():
    buffer = RolloutBuffer(3, 2, (4, 10, 10), 7)
    for t in range(3):
        obs = np.stack([room_obs(10, 10, agent=(2 + t, 2 + env), direction=t) for env in range(2)])
        buffer.add(obs, np.zeros(2, bool), torch.tensor([t, 3 + t]), torch.zeros(2), torch.zeros(2),
                   np.zeros(2, np.float32), None)
    buffer.initial_state = (torch.zeros(1, 2, 8), torch.zeros(1, 2, 8))  # read by the recurrent order only
    model = ActorCritic((4, 10, 10), 7)
    inputs = tuple(t.reshape((3, 2) + t.shape[1:]) for t in model.prepare(buffer.obs.reshape(6, 4, 10, 10)))
    for recurrent in (False, True):
        plain = list(buffer.minibatches(2, torch.Generator().manual_seed(1), recurrent))
        prepared = list(buffer.minibatches(2, torch.Generator().manual_seed(1), recurrent, inputs))
        for a, b in zip(plain, prepared):
            assert torch.equal(a.actions, b.actions)
            torch.testing.assert_close(model(b.obs)[0], model(a.obs)[0])


def test_egocentric_crop_puts_what_is_ahead_above_the_agent():
    obs = room_obs(9, 9, agent=(4, 4), direction=1, objects=[(KEY, "red", (4, 6), 0)])  # facing +y (south)
    view = EgocentricCrop(9, 9, 7)(torch.from_numpy(obs[None]))[0].numpy()
    centre = 3
    assert view[3, centre, centre] == 2, "agent at the centre, channel 3 keeps its direction + 1"
    assert view[0, centre - 2, centre] == KEY, "the key two cells ahead is two rows above the agent"
    corner = room_obs(9, 9, agent=(1, 1), direction=3)  # facing -y: three rows ahead are off the map
    view = EgocentricCrop(9, 9, 7)(torch.from_numpy(corner[None]))[0].numpy()
    assert (view[0, 0] == 2).all() and (view[1, 0] == 5).all(), "cells off the map read as grey wall"
    assert view[0, centre - 1, centre] == 2, "the wall in front of the agent"


def test_lstm_state_resets_at_episode_start():
    torch.manual_seed(0)
    model = ActorCritic((4, 7, 7), 7, recurrent=True)
    obs = torch.from_numpy(room_obs()[None])
    _, _, warm = model(obs, model.initial_state(1), torch.zeros(1))
    fresh_logits = model(obs, model.initial_state(1), torch.zeros(1))[0]
    reset_logits = model(obs, warm, torch.ones(1))[0]
    carried_logits = model(obs, warm, torch.zeros(1))[0]
    assert torch.allclose(fresh_logits, reset_logits) and not torch.allclose(fresh_logits, carried_logits)


def test_gae_matches_a_hand_computation():
    buffer = RolloutBuffer(3, 1, (1,), 2, torch.float32)
    rewards, values = [1.0, 0.0, 2.0], [0.5, 0.4, 0.3]
    starts = [True, False, True]  # the episode ends after step 1; step 2 starts a new one
    for t in range(3):
        buffer.add(np.zeros((1, 1), np.float32), np.array([starts[t]]), torch.zeros(1, dtype=torch.long),
                   torch.zeros(1), torch.tensor([values[t]]), np.array([rewards[t]], np.float32), None)
    gamma, lam, last_value = 0.9, 0.8, 1.0
    buffer.compute_returns(torch.tensor([last_value]), np.array([False]), gamma, lam)
    d2 = 2.0 + gamma * last_value - 0.3
    d1 = 0.0 - 0.4  # no bootstrap into the next episode
    d0 = 1.0 + gamma * 0.4 - 0.5
    expected = [d0 + gamma * lam * d1, d1, d2]
    np.testing.assert_allclose(buffer.advantages[:, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(buffer.returns[:, 0].numpy(), np.array(expected) + values, rtol=1e-6)


def test_distillation_gradient_pulls_the_student_towards_the_teacher():
    torch.manual_seed(0)
    logits = torch.zeros(5, 7, requires_grad=True)
    teacher = torch.zeros(5, 7)
    teacher[:, 3] = 0.8
    teacher[:, 2] = 0.2
    loss = distillation_loss(torch.log_softmax(logits, -1), teacher)
    loss.backward()
    assert loss.item() == pytest.approx(np.log(7), rel=1e-6)
    assert (logits.grad[:, 3] < 0).all() and (logits.grad[:, 2] < 0).all(), "descent raises the teacher's actions"
    assert (logits.grad[:, [0, 1, 4, 5, 6]] > 0).all(), "and lowers the others"
    stepped = (logits - 1.0 * logits.grad).detach()
    before, after = torch.softmax(logits.detach(), -1)[:, 3], torch.softmax(stepped, -1)[:, 3]
    assert (after > before).all() and distillation_loss(torch.log_softmax(stepped, -1), teacher) < loss


def test_ppo_update_with_distillation_moves_the_policy_to_the_teacher():
    torch.manual_seed(0)
    model = ActorCritic((4, 7, 7), 7)
    buffer = RolloutBuffer(8, 4, (4, 7, 7), 7)
    obs = np.stack([room_obs(agent=(1 + i, 2), direction=i % 4) for i in range(4)])
    with torch.no_grad():
        logits, values, _ = model(torch.from_numpy(obs))
    for _ in range(8):
        teacher = np.zeros((4, 7), np.float32)
        teacher[:, 5] = 1.0
        actions = torch.zeros(4, dtype=torch.long)
        buffer.add(obs, np.zeros(4, bool), actions, torch.log_softmax(logits, -1)[:, 0], values,
                   np.zeros(4, np.float32), teacher)
    buffer.compute_returns(values, np.zeros(4, bool), 0.99, 0.95)
    before = torch.softmax(logits, -1)[:, 5].mean().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stats = ppo_update(model, optimizer, buffer, PPOSettings(update_epochs=4, num_minibatches=2), 1.0,
                       torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = torch.softmax(model(torch.from_numpy(obs))[0], -1)[:, 5].mean().item()
    assert after > before + 0.1 and stats["distill"] > 0


def test_schedule_decays_to_a_floor_then_switches_off():
    schedule = ScheduleSettings(initial=1.0, decay=0.25, floor=0.3, off_after=6)
    assert [schedule.coef(u) for u in range(8)] == [1.0, 0.75, 0.5, 0.3, 0.3, 0.3, 0.0, 0.0]
    assert ScheduleSettings(1.0, 0.0, 0.0, 0).coef(0) == 0.0
    with pytest.raises(ConfigError, match="--distill_initial must be >= 0"):
        build_config("SimpleDoorKey", {"distill_initial": -1.0})


def test_coarse_view_counts_codes_per_block():
    from algos.model import CoarseCounts
    codes = torch.randint(0, 3, (2, 4, 7, 7), dtype=torch.uint8)
    counts = CoarseCounts(7, 3, 1)(codes).view(2, 9, 25)  # 3x3 blocks of 3x3 cells (edge blocks smaller)
    np.testing.assert_allclose(counts[:, :, :11].sum(-1).numpy(), 1.0, rtol=1e-6)  # one object per cell
    block = codes[0, 0, :3, :3].flatten().long()
    expected = torch.bincount(block, minlength=11).float() / 9
    assert torch.allclose(counts[0, 0, :11], expected)
    corner = codes[1, 2, 6:, 6:].flatten().long() + 17  # state channel of the 1x1 corner block
    assert counts[1, 8, corner.item()] == 1.0


def test_checkpoints_of_another_architecture_are_refused(tmp_path):
    from algos.student import check_compatible
    from utils.checkpoint import CheckpointError
    meta = {"task": "SimpleDoorKey", "model_config": {"architecture": 1, "obs_shape": [4, 10, 10], "num_actions": 7}}
    with pytest.raises(CheckpointError, match="another version of the student network"):
        check_compatible(meta, "SimpleDoorKey", (4, 10, 10), 7, tmp_path / "acmodel.pt")
