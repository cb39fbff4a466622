"""LLM4Teach in one file: a PPO student that distils a plan-following LLM teacher on SimpleDoorKey.

Run it with the project's environment (``--help`` lists the flags):

    python examples/minimal_llm4teach.py --seed 0

The whole method, top to bottom:

1. The teacher. The recorded answers of Vicuna-33B (planners/data) give, for each sentence describing what
   the agent has seen ("Agent sees <key>, holds <nothing>."), a distribution over plans ("go to <key>, pick
   up <key>"). The MiniGrid skills turn a plan into the primitive action it recommends now. The result is
   one action distribution per environment and step; nothing here needs an LLM server.
2. The student. A small CNN actor-critic reads the remembered map, re-centred on the agent and turned so
   that the agent faces up.
3. The loss. The usual clipped PPO loss plus ``coef * cross_entropy(teacher, student)`` on the states the
   student visited. ``coef`` starts at 1, shrinks each update and is switched off after a while: the student
   first imitates its teacher, then improves on it from reward alone.

Only the environments and the teacher are imported from the project; the student, PPO and the schedule
are written out below. ``python main.py train`` does the same with more options (LSTM, soft teacher, live
LLM, checkpoints, TensorBoard); its default hyperparameters are the ones used here, and its student differs
mainly in seeing an 11-cell egocentric crop plus a coarse summary of the map instead of the whole map.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
import envs  # noqa: E402  (registers the tasks)
from envs.vector import EnvBatch  # noqa: E402
from planners.minigrid.family import MiniGridFamily  # noqa: E402
from planners.planner import Planner  # noqa: E402
from planners.sources import RecordedPlanSource  # noqa: E402
from planners.teacher import PlanTeacher  # noqa: E402

TASK = "SimpleDoorKey"
CODES = (11, 6, 3, 5)  # distinct values of the map's channels: object, colour, door state, agent direction + 1
WALL = (2, 5, 0, 0)  # what cells off the map read as: a grey wall


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy, the envs and the teacher")
    p.add_argument("--total_steps", type=positive_int, default=61_440, help="env steps to train for (60 updates)")
    p.add_argument("--num_envs", type=positive_int, default=16, help="environments stepped together")
    p.add_argument("--num_steps", type=positive_int, default=64, help="rollout length per env and update")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--update_epochs", type=positive_int, default=4, help="passes over each rollout")
    p.add_argument("--num_minibatches", type=positive_int, default=8, help="minibatches per pass")
    p.add_argument("--distill_off_after", type=int, default=50, help="updates with a teacher (0 = plain PPO)")
    p.add_argument("--eval_every", type=positive_int, default=2, help="evaluate every this many updates")
    p.add_argument("--num_eval", type=positive_int, default=32, help="evaluation episodes (fixed layouts)")
    p.add_argument("--stop_at", type=float, default=None, help="stop once evaluation success reaches this")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1 suits this small net)")
    args = p.parse_args(argv)
    if args.lr <= 0:
        p.error("--lr must be positive")
    if args.distill_off_after < 0:
        p.error("--distill_off_after must be >= 0")
    return args


# ---------------------------------------------------------------------------------------------- student
class Student(nn.Module):
    """Remembered map (B, 4, W, H) -> action logits (B, A) and state value (B,)."""

    def __init__(self, width: int, height: int, num_actions: int):
        super().__init__()
        self.span = 2 * max(width, height) - 1  # the agent at the centre still sees the whole map
        self.register_buffer("offsets", torch.tensor(np.cumsum((0,) + CODES[:-1])).view(1, 4, 1, 1))
        self.conv = nn.Sequential(nn.Conv2d(sum(CODES), 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        flat = self.conv(torch.zeros(1, sum(CODES), self.span, self.span)).shape[1]
        self.body = nn.Sequential(nn.Linear(flat, 128), nn.ReLU())
        self.actor = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, num_actions))
        self.critic = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
        for layer in self.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                nn.init.orthogonal_(layer.weight, np.sqrt(2))
                nn.init.zeros_(layer.bias)
        nn.init.orthogonal_(self.actor[-1].weight, 0.01)  # near-uniform first policy
        nn.init.orthogonal_(self.critic[-1].weight, 1.0)

    def egocentric(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, 4, W, H) -> (B, 4, S, S): row 0 is furthest ahead of the agent, the agent sits at the centre."""
        batch, _, width, height = maps.shape
        agent = maps[:, 3].reshape(batch, -1).argmax(1)  # channel 3 is non-zero only at the agent's cell
        ax, ay = agent // height, agent % height
        facing = (maps[:, 3].reshape(batch, -1).gather(1, agent[:, None]).squeeze(1).long() - 1).clamp(0, 3)
        fx = torch.tensor([1, 0, -1, 0])[facing].view(-1, 1, 1)  # MiniGrid directions: east, south, west, north
        fy = torch.tensor([0, 1, 0, -1])[facing].view(-1, 1, 1)
        r = self.span // 2
        ahead = (r - torch.arange(self.span)).view(1, -1, 1)
        right = (torch.arange(self.span) - r).view(1, 1, -1)
        x = ax.view(-1, 1, 1) + ahead * fx - right * fy  # the agent's right is (-fy, fx)
        y = ay.view(-1, 1, 1) + ahead * fy + right * fx
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        cells = maps[torch.arange(batch).view(-1, 1, 1), :, x.clamp(0, width - 1), y.clamp(0, height - 1)]
        wall = torch.tensor(WALL, dtype=maps.dtype)
        return torch.where(inside[..., None], cells, wall).permute(0, 3, 1, 2)

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.egocentric(maps).long() + self.offsets  # each channel's codes get their own range
        planes = torch.zeros(codes.shape[0], sum(CODES), self.span, self.span).scatter_(1, codes, 1.0)
        hidden = self.body(self.conv(planes))
        return self.actor(hidden), self.critic(hidden).squeeze(-1)


# ---------------------------------------------------------------------------------------------- teacher
def recorded_teacher(num_envs: int, seed: int) -> PlanTeacher:
    """The hard teacher of the paper: per step, one plan drawn from the recorded answers, followed one-hot."""
    family = MiniGridFamily(naming="plain", skills="paper")
    planner = Planner(RecordedPlanSource("simpledoorkey"), family.parse)
    return PlanTeacher(planner, family, num_envs, mode="hard", hard_sampling="step", seed=seed)


def distill_coef(update: int, off_after: int) -> float:
    """1.0, shrinking by 0.02 per update to a floor of 0.05, then 0 from update ``off_after`` on."""
    return max(0.05, 1.0 - 0.02 * update) if update < off_after else 0.0


# ---------------------------------------------------------------------------------------------- PPO
GAMMA, GAE_LAMBDA, CLIP, ENT_COEF, VF_COEF, MAX_GRAD_NORM = 0.99, 0.95, 0.2, 0.001, 0.5, 0.5


def advantages_gae(rewards, values, starts, next_value, next_start):
    """Generalised advantage estimation over (T, N) tensors. ``starts[t]`` is 1 where obs t began an episode,
    so the value after an episode's last step is never bootstrapped into it."""
    advantages, running = torch.zeros_like(rewards), torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        after, ends = (next_value, next_start) if t == len(rewards) - 1 else (values[t + 1], starts[t + 1])
        delta = rewards[t] + GAMMA * after * (1 - ends) - values[t]
        running = delta + GAMMA * GAE_LAMBDA * (1 - ends) * running
        advantages[t] = running
    return advantages


def ppo_loss(student, obs, actions, old_logp, advantages, returns, old_values, teacher_probs, coef):
    """Clipped policy loss + value loss - entropy bonus + coef * distillation, on one minibatch."""
    logits, values = student(obs)
    log_probs = F.log_softmax(logits, -1)
    ratio = (log_probs.gather(1, actions[:, None]).squeeze(1) - old_logp).exp()
    if len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    # the pessimistic bound: nothing is gained by moving the ratio outside [1 - CLIP, 1 + CLIP]
    policy = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
    clipped = old_values + (values - old_values).clamp(-CLIP, CLIP)
    value = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    loss = policy + VF_COEF * value - ENT_COEF * entropy
    if coef > 0:  # cross-entropy from the teacher's distribution to the student's
        loss = loss - coef * (teacher_probs * log_probs).sum(-1).mean()
    return loss, {"policy": policy.item(), "value": value.item(), "entropy": entropy.item()}


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(student: Student, seeds: list[int]) -> float:
    """Success rate of the student alone (sampled actions), one episode per layout seed."""
    pool = [envs.make_env(TASK) for _ in seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(pool, seeds)])
    running, success = np.ones(len(pool), bool), np.zeros(len(pool), bool)
    while running.any():
        logits, _ = student(torch.from_numpy(obs))
        actions = torch.distributions.Categorical(logits=logits).sample().numpy()
        for i in np.flatnonzero(running):
            obs[i], _, terminated, truncated, info = pool[i].step(int(actions[i]))
            if terminated or truncated:
                running[i], success[i] = False, info["success"]
    return float(success.mean())


# ---------------------------------------------------------------------------------------------- training
def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    batch = EnvBatch([envs.make_env(TASK) for _ in range(args.num_envs)], seed=args.seed)
    teacher = recorded_teacher(args.num_envs, args.seed)
    _, width, height = batch.observation_shape
    student = Student(width, height, batch.num_actions)
    optimizer = torch.optim.Adam(student.parameters(), lr=args.lr, eps=1e-5)
    eval_seeds = [1_000_000 + args.seed * 10_000 + i for i in range(args.num_eval)]  # unseen in training

    T, N = args.num_steps, args.num_envs
    obs_buf = torch.zeros((T, N) + batch.observation_shape, dtype=torch.uint8)
    actions_buf, logp_buf = torch.zeros(T, N, dtype=torch.long), torch.zeros(T, N)
    rewards_buf, dones_buf, values_buf = torch.zeros(T, N), torch.zeros(T, N), torch.zeros(T, N)
    teacher_buf = torch.zeros(T, N, batch.num_actions)

    obs, done = torch.from_numpy(batch.obs.copy()), torch.zeros(N)
    updates = max(1, args.total_steps // (T * N))
    recent, steps, start, reached = [], 0, time.time(), None
    try:
        for update in range(updates):
            coef = distill_coef(update, args.distill_off_after)
            # -- rollout: the student acts; the teacher labels every state it visits while coef > 0
            for t in range(T):
                with torch.no_grad():
                    logits, value = student(obs)
                dist = torch.distributions.Categorical(logits=logits)
                action = dist.sample()
                obs_buf[t], dones_buf[t], values_buf[t] = obs, done, value
                actions_buf[t], logp_buf[t] = action, dist.log_prob(action)
                if coef > 0:
                    teacher_buf[t] = torch.from_numpy(teacher.action_probs(obs.numpy()))
                next_obs, reward, ended, finished = batch.step(action.numpy())
                for episode in finished:
                    teacher.reset(episode.env_index)
                    recent = (recent + [episode.success])[-100:]
                rewards_buf[t] = torch.from_numpy(reward)
                obs, done = torch.from_numpy(next_obs), torch.from_numpy(ended.astype(np.float32))
            steps += T * N

            # -- learn: PPO epochs over shuffled minibatches of the rollout
            with torch.no_grad():
                advantages = advantages_gae(rewards_buf, values_buf, dones_buf, student(obs)[1], done)
            rollout = [x.reshape((T * N,) + x.shape[2:]) for x in
                       (obs_buf, actions_buf, logp_buf, advantages, advantages + values_buf, values_buf, teacher_buf)]
            size = max(1, T * N // args.num_minibatches)
            for _ in range(args.update_epochs):
                order = torch.randperm(T * N)
                for lo in range(0, T * N, size):
                    loss, parts = ppo_loss(student, *(x[order[lo:lo + size]] for x in rollout), coef=coef)
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(student.parameters(), MAX_GRAD_NORM)
                    optimizer.step()

            # -- progress, and evaluation of the student alone
            train_success = f"{np.mean(recent):.2f}" if recent else "-"
            line = (f"update {update + 1}/{updates} | steps {steps} | coef {coef:.2f} | policy {parts['policy']:.3f} "
                    f"value {parts['value']:.3f} entropy {parts['entropy']:.2f} | train success {train_success}")
            success = None
            if (update + 1) % args.eval_every == 0 or update + 1 == updates:
                success = evaluate(student, eval_seeds)
                line += f" | eval success {success:.2f}"
                if reached is None and success >= 0.9:
                    reached = steps
            print(line + f" | {time.time() - start:.0f}s", flush=True)
            if args.stop_at is not None and success is not None and success >= args.stop_at:
                break
    finally:
        teacher.close()
        batch.close()
    print(f"env steps to eval success >= 0.9: {reached if reached is not None else 'not reached'}")
    return {"steps": steps, "steps_to_0.9": reached}


if __name__ == "__main__":
    main()
