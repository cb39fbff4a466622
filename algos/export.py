"""The deployed student: its policy as an ONNX graph, and a check that onnxruntime agrees with torch.

At deployment the student acts alone: no teacher, no LLM, and with ONNX not even torch. The exported graph
maps a batch of observations (uint8, the same layout the envs produce) to action probabilities. The
recurrent student's LSTM state is an explicit input and output (``lstm_h``/``lstm_c``, ``(batch,
hidden_size)``): the caller keeps it between steps and passes zeros at an episode's first step.

The exporter is torch's TorchScript-based one (``dynamo=False``): it runs on CPU with torch alone, in a
fraction of a second. The newer ``torch.export``-based exporter also handles this network but needs the
``onnxscript`` package and takes seconds per export.

:func:`check_export` replays observations recorded by running the env with the student through torch
and through onnxruntime, one decision at a time as deployed, and reports the largest difference between
the two action distributions.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from algos.student import device_of

OPSET = 17
OBS_INPUT, PROBS_OUTPUT = "obs", "action_probs"
STATE_INPUTS, STATE_OUTPUTS = ("lstm_h", "lstm_c"), ("lstm_h_out", "lstm_c_out")


class _Probs(nn.Module):
    """Feed-forward student -> ``obs -> action_probs``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        logits, _, _ = self.model(obs)
        return torch.softmax(logits, -1)


class _RecurrentProbs(nn.Module):
    """Recurrent student, one step -> ``(obs, h, c) -> (action_probs, h', c')`` with ``(batch, hidden)`` states."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        starts = torch.zeros(obs.shape[0], device=obs.device)  # resets are the caller's job (zero state)
        logits, _, (h, c) = self.model(obs, (h.unsqueeze(0), c.unsqueeze(0)), starts)
        return torch.softmax(logits, -1), h.squeeze(0), c.squeeze(0)


def export_onnx(model: nn.Module, example_obs: np.ndarray, path: Path, metadata: dict | None = None) -> Path:
    """Write ``model``'s policy to ``path`` as ONNX (batch size free); ``metadata`` goes into the file's
    metadata properties (values JSON-encoded). The file is replaced atomically. The model may live on any
    device; the graph does not depend on it."""
    import onnx
    model = model.eval()
    obs = torch.from_numpy(np.ascontiguousarray(example_obs[:2])).to(device_of(model))
    if model.recurrent:
        wrapper = _RecurrentProbs(model)
        state = torch.zeros(len(obs), model.hidden_size, device=obs.device)
        args, inputs, outputs = (obs, state, state.clone()), (OBS_INPUT, *STATE_INPUTS), (PROBS_OUTPUT, *STATE_OUTPUTS)
    else:
        wrapper = _Probs(model)
        args, inputs, outputs = (obs,), (OBS_INPUT,), (PROBS_OUTPUT,)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # The exporter warns about its own deprecation and about traced constants; the replay check, not
        # these warnings, is what tells whether the graph is right.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, tmp, dynamo=False, opset_version=OPSET, input_names=list(inputs),
                              output_names=list(outputs), dynamic_axes={name: {0: "batch"} for name in inputs + outputs})
        graph = onnx.load(tmp)
        for key, value in (metadata or {}).items():
            graph.metadata_props.add(key=key, value=json.dumps(value))
        onnx.checker.check_model(graph)
        onnx.save(graph, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class TorchPolicy:
    """The student in torch, deciding like the deployed one: numpy observations in, probabilities out."""

    def __init__(self, model: nn.Module):
        self.model = model.eval()
        self.device = device_of(model)
        self.state = None

    def reset(self, batch_size: int = 1) -> None:
        self.state = self.model.initial_state(batch_size, self.device)

    @torch.inference_mode()
    def probs(self, obs: np.ndarray, episode_starts: np.ndarray | None = None) -> np.ndarray:
        """``(B, A)`` action probabilities; ``episode_starts`` (B,) zeroes the recurrent state first."""
        if self.model.recurrent and self.state is None:
            self.reset(len(obs))
        starts = None if episode_starts is None else torch.from_numpy(np.asarray(episode_starts, np.float32))
        if self.model.recurrent and starts is None:
            starts = torch.zeros(len(obs))
        starts = None if starts is None else starts.to(self.device)
        logits, _, self.state = self.model(torch.from_numpy(obs).to(self.device), self.state, starts)
        return torch.softmax(logits, -1).cpu().numpy()


class OnnxPolicy:
    """An exported student run by onnxruntime on the CPU; the recurrent state is kept here between calls.

    Args:
        path: the ONNX file written by :func:`export_onnx`.
        threads: onnxruntime intra-op threads (0 = its default, one per core).
    """

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.recurrent = STATE_INPUTS[0] in inputs
        self.hidden_size = int(inputs[STATE_INPUTS[0]].shape[1]) if self.recurrent else 0
        self.state = None

    def reset(self, batch_size: int = 1) -> None:
        if self.recurrent:
            zeros = np.zeros((batch_size, self.hidden_size), dtype=np.float32)
            self.state = (zeros, zeros.copy())

    def probs(self, obs: np.ndarray, episode_starts: np.ndarray | None = None) -> np.ndarray:
        """``(B, A)`` action probabilities; ``episode_starts`` (B,) zeroes the recurrent state first."""
        if not self.recurrent:
            return self.session.run([PROBS_OUTPUT], {OBS_INPUT: obs})[0]
        if self.state is None:
            self.reset(len(obs))
        h, c = self.state
        if episode_starts is not None:
            keep = (1.0 - np.asarray(episode_starts, np.float32))[:, None]
            h, c = h * keep, c * keep
        probs, h, c = self.session.run([PROBS_OUTPUT, *STATE_OUTPUTS], {OBS_INPUT: obs, STATE_INPUTS[0]: h,
                                                                           STATE_INPUTS[1]: c})
        self.state = (h, c)
        return probs


@dataclass
class Recording:
    """Observations met by the student in its env, one env, in order; ``starts`` flags episode starts."""

    obs: np.ndarray
    starts: np.ndarray


def record_observations(task: str, model: nn.Module, frame_stack: int, count: int, seed: int = 0) -> Recording:
    """``count`` consecutive observations of one env played by the student (sampled actions, seeded)."""
    import envs
    from envs.vector import EnvBatch
    batch = EnvBatch([envs.make_env(task)], seed=seed, frame_stack=frame_stack)
    policy = TorchPolicy(model)
    policy.reset(1)
    rng = np.random.default_rng(seed)
    observations, starts = [], []
    start = True
    for _ in range(count):
        obs = batch.obs.copy()
        observations.append(obs[0])
        starts.append(start)
        probs = policy.probs(obs, np.array([start], dtype=np.float32))[0].astype(np.float64)
        action = rng.choice(len(probs), p=probs / probs.sum())
        _, _, dones, _ = batch.step(np.array([action]))
        start = bool(dones[0])
    batch.close()
    return Recording(np.stack(observations), np.array(starts))


def replay(policy, recording: Recording) -> np.ndarray:
    """The policy's probabilities for each recorded observation, one decision at a time (batch 1)."""
    policy.reset(1)
    rows = [policy.probs(obs[None], np.array([start], dtype=np.float32))[0]
            for obs, start in zip(recording.obs, recording.starts)]
    return np.stack(rows)


@dataclass
class ExportCheck:
    """How far onnxruntime's action probabilities are from torch's on the recorded observations."""

    observations: int
    max_difference: float
    tolerance: float
    torch_probs: np.ndarray

    @property
    def ok(self) -> bool:
        return bool(self.max_difference <= self.tolerance)


def check_export(model: nn.Module, onnx_path: Path, recording: Recording, tolerance: float = 1e-5) -> ExportCheck:
    """Compare torch and onnxruntime decision by decision (and, for the feed-forward net, as one batch)."""
    expected = replay(TorchPolicy(model), recording)
    runtime = OnnxPolicy(onnx_path, threads=1)
    differences = [np.abs(replay(runtime, recording) - expected).max()]
    if not model.recurrent:  # the batch axis is dynamic: a whole batch must agree as well
        differences.append(np.abs(runtime.probs(recording.obs) - expected).max())
    return ExportCheck(len(recording.obs), float(max(differences)), tolerance, expected)
