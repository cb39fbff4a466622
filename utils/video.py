"""Pictures of episodes: the remembered map as the agent knows it, written to an animated GIF."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def render_remembered_map(env, tile_size: int = 16) -> np.ndarray:
    """RGB frame of the whole grid with the cells the agent has not seen yet dimmed to dark grey."""
    frame = env.get_frame(highlight=True, tile_size=tile_size)
    unseen = ~env.seen.T  # frame rows are y, columns x
    mask = np.kron(unseen, np.ones((tile_size, tile_size), dtype=bool))
    frame = frame.copy()
    frame[mask] = (frame[mask] * 0.25 + 40).astype(np.uint8)
    return frame


def save_gif(episodes: list[list[np.ndarray]], path: Path, fps: int = 6, pause_frames: int = 4) -> Path | None:
    """Write the episodes one after another (each ending on a short pause) as one GIF; None if no frames."""
    import imageio.v3 as iio
    frames = []
    for episode in episodes:
        if episode:
            frames.extend(episode)
            frames.extend([episode[-1]] * pause_frames)
    if not frames:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), duration=1000 / fps, loop=0)
    return path
