"""examples/minimal_llm4teach.py keeps running: two tiny updates with the recorded teacher."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "minimal_llm4teach.py"


def load_example():
    spec = importlib.util.spec_from_file_location("minimal_llm4teach", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_minimal_example_trains_and_evaluates(capsys):
    example = load_example()
    result = example.main(["--num_envs", "2", "--num_steps", "8", "--total_steps", "32", "--num_minibatches", "2",
                           "--num_eval", "2", "--eval_every", "1"])
    out = capsys.readouterr().out
    assert result["steps"] == 32
    lines = [line for line in out.splitlines() if line.startswith("update ")]
    assert len(lines) == 2 and "coef 1.00" in lines[0] and "eval success" in lines[1]
    assert "env steps to eval success >= 0.9" in out


def test_minimal_example_student_sees_the_map_from_the_agent(make_room):
    """The egocentric view: what is ahead of the agent is above it, whichever way it faces."""
    import torch
    from conftest import KEY
    example = load_example()
    student = example.Student(7, 7, 7)
    centre = student.span // 2
    for direction, key in [(0, (4, 2)), (1, (2, 4)), (2, (0, 2)), (3, (2, 0))]:
        room = make_room(agent=(2, 2), direction=direction, objects=[(KEY, "red", key, 0)])
        view = student.egocentric(torch.from_numpy(room[None]))[0]
        assert view[0, centre - 2, centre] == KEY, f"facing {direction}: the key two cells ahead"
        assert view[3, centre, centre] == direction + 1, "the agent at the centre"


def test_minimal_example_rejects_bad_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_example().parse_args(["--num_envs", "0"])
    assert exit_info.value.code == 2 and "--num_envs" in capsys.readouterr().err


def test_minimal_example_loss_has_the_same_gradient_as_algos_ppo():
    """The example's own PPO + distillation loss matches algos/ppo.py (pinned by tests/test_ppo_loss.py), with
    ratios and values inside and outside their clip ranges and advantages of both signs."""
    import torch
    from test_ppo_loss import NUM_ACTIONS, TablePolicy, random_logits, rollout, settings

    from algos.ppo import ppo_update
    example = load_example()
    n = 8
    actions = torch.arange(n) % NUM_ACTIONS
    advantages = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.3, 0.8, -2.0, 0.1])
    ratios = torch.tensor([1.5, 0.5, 1.0, 1.1, 0.7, 1.3, 0.9, 1.0])
    old_values, returns = torch.linspace(-1, 1, n), torch.linspace(1, -0.5, n)
    teacher = torch.softmax(random_logits(n, seed=5), -1)
    reference = TablePolicy(random_logits(n, seed=4), values=old_values + torch.linspace(-0.5, 0.5, n))
    ours = TablePolicy(reference.logits.detach(), reference.values.detach())
    old_logp = reference.log_pi(actions) - ratios.log()

    buffer = rollout(actions, advantages, old_logp, old_values, returns)
    buffer.teacher_probs[:, 0] = teacher
    ppo = settings(lr=0.0, ent_coef=example.ENT_COEF, vf_coef=example.VF_COEF, clip_coef=example.CLIP,
                   norm_adv=True)
    ppo_update(reference, torch.optim.SGD(reference.parameters(), lr=0.0), buffer, ppo, 0.5,
               torch.Generator().manual_seed(0))

    obs = torch.arange(n).view(-1, 1)
    loss, _ = example.ppo_loss(lambda x: ours(x)[:2], obs, actions, old_logp, advantages, returns, old_values,
                               teacher, coef=0.5)
    loss.backward()
    torch.testing.assert_close(ours.logits.grad, reference.logits.grad)
    torch.testing.assert_close(ours.values.grad, reference.values.grad)
