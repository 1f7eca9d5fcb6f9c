"""Chapter 7: EWC's spring. Each parameter is pulled back towards its old value theta*_A with a
stiffness lambda * F_i: stiff where the old periods were sensitive (F large), slack where they
did not care (F small). Training on the new period alone would go to theta*_B; EWC stops where
the new loss's pull and the springs balance.

Two parameters, a quadratic new loss 1/2 |theta - theta*_B|^2 and the penalty
lambda/2 sum_i F_i (theta_i - theta*_A,i)^2: the EWC solution is computed in closed form,
theta_i = (theta*_B,i + lambda F_i theta*_A,i) / (1 + lambda F_i), not placed by hand.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

OLD = np.array([0.0, 0.0])  # theta*_A, where the old periods left the parameters
NEW = np.array([2.4, 2.2])  # theta*_B, where the new period alone would take them
FISHER = np.array([4.0, 0.15])  # F_1 stiff, F_2 slack
STRENGTH = 1.0  # lambda
BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5}


def ewc_solution() -> np.ndarray:
    """The minimum of 1/2 |theta - NEW|^2 + lambda/2 sum_i F_i (theta_i - OLD_i)^2."""
    return (NEW + STRENGTH * FISHER * OLD) / (1 + STRENGTH * FISHER)


def _zigzag(start: np.ndarray, end: np.ndarray, turns: int, width: float) -> np.ndarray:
    """Points of a spring drawn from start to end: straight ends, a zigzag in between."""
    direction = end - start
    length = np.linalg.norm(direction)
    along, across = direction / length, np.array([-direction[1], direction[0]]) / length
    t = np.linspace(0.15, 0.85, 2 * turns + 1)
    offsets = width * np.array([0.0] + [(-1) ** k for k in range(1, 2 * turns)] + [0.0])
    middle = start + np.outer(t * length, along) + np.outer(offsets, across)
    return np.vstack([start, middle, end])


def draw() -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6.6, 5.6), dpi=100)
    grid = np.linspace(-1.2, 3.4, 300)
    first, second = np.meshgrid(grid, grid)
    penalty = (
        STRENGTH / 2 * (FISHER[0] * (first - OLD[0]) ** 2 + FISHER[1] * (second - OLD[1]) ** 2)
    )
    new_loss = 0.5 * ((first - NEW[0]) ** 2 + (second - NEW[1]) ** 2)
    axis.contour(
        first, second, penalty, levels=[0.05, 0.2, 0.5, 1.0], colors="#3b75af", linewidths=1.2
    )
    axis.contour(
        first,
        second,
        new_loss,
        levels=[0.1, 0.5, 1.2],
        colors="#c0672b",
        linewidths=1.2,
        linestyles="dashed",
    )
    solution = ewc_solution()
    corner = np.array([solution[0], OLD[1]])
    stiff = _zigzag(OLD, corner, turns=7, width=0.07)
    slack = _zigzag(corner, solution, turns=3, width=0.12)
    axis.plot(stiff[:, 0], stiff[:, 1], color="#1f3f66", lw=2.6)
    axis.plot(slack[:, 0], slack[:, 1], color="#1f3f66", lw=1.0)
    axis.annotate(
        "",
        xy=NEW,
        xytext=OLD,
        arrowprops={"arrowstyle": "->", "color": "#888888", "lw": 1.2, "ls": ":"},
    )
    for point, label, color, offset in [
        (OLD, "old solution $\\theta^*_A$", "#3b75af", (-0.1, -0.35)),
        (NEW, "new period alone $\\theta^*_B$\n(fine-tuning: forgets)", "#c0672b", (-1.2, 0.45)),
        (solution, "EWC", "#1f3f66", (0.12, 0.05)),
    ]:
        axis.plot(*point, "o", color=color, markersize=8)
        axis.text(
            point[0] + offset[0], point[1] + offset[1], label, fontsize=11, color=color, bbox=BOX
        )
    axis.text(
        0.05,
        -0.75,
        f"stiff spring: $\\lambda F_1$ = {STRENGTH * FISHER[0]:g}",
        fontsize=11,
        color="#1f3f66",
        bbox=BOX,
    )
    axis.text(
        solution[0] + 0.3,
        0.75,
        f"slack spring:\n$\\lambda F_2$ = {STRENGTH * FISHER[1]:g}",
        fontsize=11,
        color="#1f3f66",
        bbox=BOX,
    )
    axis.text(
        -1.12,
        3.32,
        "blue: EWC's penalty (old data)\norange, dashed: loss on the new data",
        fontsize=10,
        va="top",
        ha="left",
        bbox=BOX,
    )
    axis.set_xlabel("parameter $\\theta_1$ (the old periods depend on it)", fontsize=11)
    axis.set_ylabel("parameter $\\theta_2$ (they do not)", fontsize=11)
    axis.set_xlim(-1.2, 3.4)
    axis.set_ylim(-1.0, 3.4)
    axis.set_aspect("equal")
    axis.tick_params(labelsize=10)
    axis.set_title("EWC: a spring on every parameter, as stiff as the Fisher says", fontsize=12)
    figure.tight_layout()
    return figure
