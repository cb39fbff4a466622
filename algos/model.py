"""The student: an actor-critic network for remembered-map observations.

1. The map is re-centred on the agent and rotated so that it faces up (an ``ego_size`` square; cells off
   the map read as wall). What to do next depends on where things are *relative to the agent*; in this
   frame a convolution sees that directly instead of learning it for every position and heading, which
   made imitating the teacher several times faster in our tests (see README).
2. Each cell's object/colour/state/agent codes are one-hot encoded (25 channels per frame).
3. A small CNN (two 3x3 convolutions with max-pooling, channels-last for CPU speed) and a fully connected
   layer give a feature vector; an optional LSTM carries memory across steps; two small heads give action
   logits and the state value.

The input stays ``uint8`` until the network, so rollout buffers stay small. The rest of the code builds the
student through :mod:`algos.student`, the one place that names this class.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

# Number of distinct codes per observation channel: MiniGrid objects, colours, door states, agent dir + 1.
CHANNEL_SIZES = (11, 6, 3, 5)
# Bumped whenever a change makes old weights mean something else (checkpoints record it and are refused).
ARCHITECTURE_VERSION = 2


def _init(layer: nn.Module, gain: float = math.sqrt(2)) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class OneHotCells(nn.Module):
    """``(B, 4 * k, W, H)`` uint8 codes -> ``(B, 25 * k, W, H)`` float one-hot planes."""

    def __init__(self, frames: int):
        super().__init__()
        offsets = np.cumsum((0,) + CHANNEL_SIZES[:-1])
        self.register_buffer("offsets", torch.tensor(
            [o + f * sum(CHANNEL_SIZES) for f in range(frames) for o in offsets]).view(1, -1, 1, 1))
        self.out_channels = sum(CHANNEL_SIZES) * frames

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        # Built channels-last (B, W, H, C) and returned as a (B, C, W, H) view: no layout copy for the CNN.
        index = (codes.long() + self.offsets).permute(0, 2, 3, 1)
        planes = torch.zeros(codes.shape[0], *codes.shape[2:], self.out_channels, device=codes.device)
        return planes.scatter_(3, index, 1.0).permute(0, 3, 1, 2)


class EgocentricCrop(nn.Module):
    """``(B, 4 * k, W, H)`` map -> ``(B, 4 * k, S, S)`` view centred on the agent, agent facing up.

    The agent is found in the newest frame's agent channel. One gather with a precomputed index table
    (direction x agent cell x view cell) does the translation and rotation for the whole batch.
    """

    OFF_MAP = (2, 5, 0, 0)  # a grey wall

    def __init__(self, width: int, height: int, size: int):
        super().__init__()
        if size % 2 == 0 or size < 3:
            raise ValueError(f"ego_size must be odd and >= 3, got {size}")
        self.width, self.height, self.size = width, height, size
        centre = size // 2
        off_map = width * height
        table = np.full((4, width, height, size * size), off_map, dtype=np.int64)
        rows, cols = np.divmod(np.arange(size * size), size)  # view row 0 = furthest ahead
        ahead, right = centre - rows, cols - centre
        for direction, (fx, fy) in enumerate(((1, 0), (0, 1), (-1, 0), (0, -1))):
            rx, ry = -fy, fx
            for ax in range(width):
                for ay in range(height):
                    x, y = ax + ahead * fx + right * rx, ay + ahead * fy + right * ry
                    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
                    table[direction, ax, ay, inside] = (x * height + y)[inside]
        # Cell indices fit 16 bits on every task here (an ONNX export stores this table: 4x smaller than int64).
        small = np.int16 if off_map <= np.iinfo(np.int16).max else np.int32
        self.register_buffer("table", torch.from_numpy(table.astype(small)), persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        batch, channels = codes.shape[:2]
        agent = codes[:, -1].reshape(batch, -1)
        cell = agent.argmax(1)
        direction = (agent.gather(1, cell.unsqueeze(1)).squeeze(1).long() - 1).clamp(0, 3)
        index = self.table[direction, cell // self.height, cell % self.height].long()
        off_map = torch.tensor(self.OFF_MAP * (channels // 4), dtype=codes.dtype, device=codes.device)
        flat = torch.cat([codes.reshape(batch, channels, -1), off_map.view(1, channels, 1).expand(batch, -1, 1)], 2)
        return flat.gather(2, index.unsqueeze(1).expand(-1, channels, -1)).view(batch, channels, self.size, self.size)


class CoarseCounts(nn.Module):
    """``(B, 4 * k, S, S)`` codes -> ``(B, regions * 25 * k)``: per ``region x region`` block, the fraction of
    cells holding each code. The same numbers as average-pooling the one-hot planes, without building them."""

    def __init__(self, size: int, region: int, frames: int):
        super().__init__()
        blocks = -(-size // region)
        rows = np.arange(size) // region
        block_of_cell = (rows[:, None] * blocks + rows[None, :]).reshape(-1)
        cells_per_block = np.bincount(block_of_cell, minlength=blocks * blocks)
        self.codes = sum(CHANNEL_SIZES) * frames
        self.num_features = blocks * blocks * self.codes
        # index of (block, code) = block * codes + channel offset + code: the constant part precomputed
        offsets = OneHotCells(frames).offsets.view(1, -1, 1)
        base = offsets + torch.from_numpy(block_of_cell * self.codes).view(1, 1, -1)
        self.register_buffer("base", base, persistent=False)
        scale = 1.0 / np.repeat(cells_per_block, self.codes)
        self.register_buffer("scale", torch.from_numpy(scale).float(), persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        batch = codes.shape[0]
        index = (codes.reshape(batch, codes.shape[1], -1).long() + self.base).reshape(batch, -1)
        counts = torch.zeros(batch, self.num_features, device=codes.device)
        counts.scatter_add_(1, index, torch.ones_like(index, dtype=counts.dtype))
        return counts * self.scale


class GridEncoder(nn.Module):
    """Remembered map ``(4 * k, W, H)`` -> feature vector: egocentric crop, one-hot cells, CNN, linear.

    With ``ego_size`` the CNN reads an ``ego_size`` square around the agent at full resolution, and a coarse
    summary of the whole map in the agent's frame (for each ~``1/GLOBAL_CELLS`` block of a crop spanning the
    whole map, the fraction of cells holding each code: "how much is unseen / is there a key ahead-left, far
    away") goes straight to the linear layer. It costs little and tells the student where to go when the
    target is out of the crop.
    """

    GLOBAL_CELLS = 5

    def __init__(self, obs_shape: tuple[int, int, int], hidden_size: int, ego_size: int):
        super().__init__()
        channels, width, height = obs_shape
        if channels % len(CHANNEL_SIZES):
            raise ValueError(f"observation has {channels} channels, expected a multiple of {len(CHANNEL_SIZES)}")
        frames = channels // len(CHANNEL_SIZES)
        self.encode = OneHotCells(frames)
        self.ego_size = ego_size
        global_features = 0
        if ego_size:
            whole = 2 * max(width, height) - 1  # every cell of the map stays in view wherever the agent is
            self.span = max(whole, ego_size)
            self.view = EgocentricCrop(width, height, self.span)
            self.coarse = CoarseCounts(self.span, max(1, -(-self.span // self.GLOBAL_CELLS)), frames)
            global_features = self.coarse.num_features
            width = height = ego_size
        else:
            self.view = nn.Identity()
        layers = [_init(nn.Conv2d(self.encode.out_channels, 16, 3, padding=1)), nn.ReLU(), nn.MaxPool2d(2),
                  _init(nn.Conv2d(16, 32, 3, padding=1)), nn.ReLU()]
        if min(width, height) // 2 >= 8:  # large maps: pool once more to keep the net small
            layers.append(nn.MaxPool2d(2))
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, self.encode.out_channels, width, height)).numel()
        self.features = nn.Sequential(_init(nn.Linear(flat + global_features, hidden_size)), nn.ReLU())
        self.to(memory_format=torch.channels_last)

    def prepare(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The parameter-free part: one-hot planes of the (egocentric) view, channels-last ``(B, W, H, C)``,
        and the coarse counts ``(B, F)`` when ``ego_size`` is set."""
        codes = self.view(obs)
        if not self.ego_size:
            return (self.encode(codes).permute(0, 2, 3, 1),)
        start = (self.span - self.ego_size) // 2
        local = self.encode(codes[:, :, start:start + self.ego_size, start:start + self.ego_size])
        return local.permute(0, 2, 3, 1), self.coarse(codes)

    def forward(self, obs: torch.Tensor | tuple) -> torch.Tensor:
        planes, *coarse = self.prepare(obs) if isinstance(obs, torch.Tensor) else obs
        maps = self.conv(planes.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)).flatten(1)
        return self.features(torch.cat([maps, *coarse], 1) if coarse else maps)


class VectorEncoder(nn.Module):
    """Flat observation (e.g. Habitat's symbolic state) -> feature vector: a two-layer MLP."""

    def __init__(self, obs_dim: int, hidden_size: int):
        super().__init__()
        self.net = nn.Sequential(_init(nn.Linear(obs_dim, hidden_size)), nn.ReLU(),
                                 _init(nn.Linear(hidden_size, hidden_size)), nn.ReLU())

    def prepare(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (obs.float(),)

    def forward(self, obs: torch.Tensor | tuple) -> torch.Tensor:
        return self.net(obs.float() if isinstance(obs, torch.Tensor) else obs[0])


class ActorCritic(nn.Module):
    """Actor-critic for remembered maps ``(4 * frame_stack, W, H)`` or flat vectors ``(D,)``.

    Args:
        obs_shape: observation shape.
        num_actions: size of the discrete action space.
        hidden_size: width of the feature vector (and of the LSTM).
        recurrent: add an LSTM between the features and the heads.
        ego_size: for maps, side of the agent-centred view the CNN sees (odd); 0 = the map as it is.
    """

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, hidden_size: int = 128,
                 recurrent: bool = False, ego_size: int = 11):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.num_actions = num_actions
        self.hidden_size = hidden_size
        self.recurrent = recurrent
        self.ego_size = ego_size if len(obs_shape) == 3 else 0
        if len(obs_shape) == 3:
            self.encoder = GridEncoder(self.obs_shape, hidden_size, ego_size)
        elif len(obs_shape) == 1:
            self.encoder = VectorEncoder(obs_shape[0], hidden_size)
        else:
            raise ValueError(f"observations must be maps (C, W, H) or vectors (D,), got shape {obs_shape}")
        if recurrent:
            self.lstm = nn.LSTM(hidden_size, hidden_size)
            for name, param in self.lstm.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(param)
                else:
                    nn.init.orthogonal_(param, 1.0)
        self.actor = nn.Sequential(_init(nn.Linear(hidden_size, 64)), nn.ReLU(), _init(nn.Linear(64, num_actions), 0.01))
        self.critic = nn.Sequential(_init(nn.Linear(hidden_size, 64)), nn.ReLU(), _init(nn.Linear(64, 1), 1.0))

    def config(self) -> dict:
        """JSON-able constructor arguments (and the architecture version), stored in checkpoints."""
        return {"architecture": ARCHITECTURE_VERSION, "obs_shape": list(self.obs_shape), "num_actions": self.num_actions,
                "hidden_size": self.hidden_size, "recurrent": self.recurrent, "ego_size": self.ego_size}

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu"):
        """Zero LSTM state ``(h, c)`` for ``batch_size`` envs; None for the feed-forward net."""
        if not self.recurrent:
            return None
        zeros = torch.zeros(1, batch_size, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def prepare(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The parameter-free part of the forward pass (crop, one-hot, coarse counts) for a batch of
        observations ``(N, ...)``. PPO prepares a whole rollout once instead of once per minibatch and epoch;
        ``forward`` accepts the result (or rows of it) in place of the observations."""
        return self.encoder.prepare(obs)

    def forward(self, obs: torch.Tensor | tuple, state=None, episode_starts: torch.Tensor | None = None):
        """Logits ``(B, A)``, values ``(B,)`` and the next recurrent state.

        ``obs`` is a batch of observations or the output of :meth:`prepare` for one. For the recurrent net
        ``obs`` is a sequence ``(T * B, ...)`` in time-major order, ``state`` the LSTM state before its first
        step and ``episode_starts`` ``(T * B,)`` flags that reset the state.
        """
        hidden = self.encoder(obs)
        if self.recurrent:
            hidden, state = self._unroll(hidden, state, episode_starts)
        return self.actor(hidden), self.critic(hidden).squeeze(-1), state

    def _unroll(self, hidden: torch.Tensor, state, episode_starts: torch.Tensor):
        batch = state[0].shape[1]
        hidden = hidden.view(-1, batch, self.hidden_size)
        keep = (1.0 - episode_starts.float()).view(-1, 1, batch, 1)
        outputs = []
        for step_input, step_keep in zip(hidden, keep):
            state = (state[0] * step_keep, state[1] * step_keep)
            out, state = self.lstm(step_input.unsqueeze(0), state)
            outputs.append(out)
        return torch.cat(outputs).view(-1, self.hidden_size), state
