"""The comparison baseline: chain windows by Umeyama on their overlaps, no joint optimisation.

Window 0 defines the world. Each later window is mapped onto the previous one by the similarity
(Umeyama) that best fits the points of the frames they share; errors accumulate along the chain.
Cameras come from the rays (same closed form as `align`, one focal per clip); each frame takes its
camera and its point-map depth from the first window that covers it. No disparity, no fusion.
"""

from __future__ import annotations

import numpy as np

from ..formats.bundle import Reconstruction
from ..windows.predictions import WindowPredictions
from .cameras import centre_from_rays, focal_from_rays, rotation_from_rays
from .geometry import intrinsics, sample_pixels, umeyama


def align_baseline(windows: WindowPredictions, pose_pixels: int = 256) -> Reconstruction:
    windows.validate()
    n, (h, w) = windows.num_frames, windows.image_size
    v, u, pixels = sample_pixels(h, w, pose_pixels)

    # Window g -> world similarity (s, R, t), chained through window g - 1.
    sims = [(1.0, np.eye(3), np.zeros(3))]
    for g in range(1, windows.num_windows):
        prev_frames, frames = windows.frames_of(g - 1), windows.frames_of(g)
        shared = np.intersect1d(prev_frames, frames)
        if len(shared) == 0:  # disjoint windows: tie the last frame of g-1 to the first of g
            t_prev, t_cur = [len(prev_frames) - 1], [0]
        else:
            t_prev, t_cur = shared - prev_frames[0], shared - frames[0]
        src = windows.pointmap[g, t_cur][:, v, u].reshape(-1, 3).astype(np.float64)
        dst = windows.pointmap[g - 1, t_prev][:, v, u].reshape(-1, 3).astype(np.float64)
        ok = ((windows.pointmap_conf[g, t_cur][:, v, u] > 0) & (windows.pointmap_conf[g - 1, t_prev][:, v, u] > 0))
        s, r, t = umeyama(src[ok.ravel()], dst[ok.ravel()])
        ps, pr, pt = sims[-1]
        sims.append((ps * s, pr @ r, ps * pr @ t + pt))

    first, slot_t = windows.first_slots()
    dirs = windows.ray_dirs[first[:, None], slot_t[:, None], v, u].astype(np.float64)
    moments = windows.ray_moments[first[:, None], slot_t[:, None], v, u].astype(np.float64)
    focal = np.full(n, float(np.median(focal_from_rays(dirs, pixels))))
    rotation = rotation_from_rays(dirs, pixels, focal)
    centre = centre_from_rays(dirs, moments)

    c2w = np.tile(np.eye(4), (n, 1, 1))
    depth = np.zeros((n, h, w), np.float32)
    confidence = np.zeros((n, h, w), np.float32)
    for i in range(n):
        g, t = first[i], slot_t[i]
        s, r, tr = sims[g]
        c2w[i, :3, :3] = r @ rotation[i]
        c2w[i, :3, 3] = s * r @ centre[i] + tr
        z = (windows.pointmap[g, t] - centre[i]) @ rotation[i][:, 2] * s
        ok = (windows.pointmap_conf[g, t] > 0) & (z > 0)
        depth[i] = np.where(ok, z, 0.0)
        confidence[i] = np.where(ok, windows.pointmap_conf[g, t], 0.0)
    c2w = np.linalg.inv(c2w[0]) @ c2w
    return Reconstruction(frames=np.arange(n, dtype=np.int64), fps=windows.fps, K=intrinsics(focal, h, w),
                          camera_to_world=c2w, depth=depth, confidence=confidence, rgb=windows.rgb,
                          source_clip=windows.source, metadata={"alignment": {"method": "baseline: Umeyama chain"}})
