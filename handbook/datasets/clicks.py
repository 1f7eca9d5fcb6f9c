"""Seeded click logs of users and items with a known preference structure
(chapter 3's recommender)."""

from __future__ import annotations

import numpy as np


def click_logs(
    n_users: int = 400,
    n_items: int = 200,
    impressions_per_user: int = 24,
    seed: int = 0,
    *,
    factors: int = 4,
    test_share: float = 0.25,
):
    """Impressions and clicks of a small shop's recommender, from a known latent-factor model.

    Every user and item has a hidden taste vector (``factors`` dimensions) and an item its
    appeal; a user is shown ``impressions_per_user`` distinct items, popular items more often
    (popularity is ``exp(appeal + noise)``: appealing items are shown more), and clicks with
    probability ``sigmoid(-1.6 + appeal + 1.7 * <user, item>)``.
    Returns a ``datasets.DatasetDict``: ``train`` and ``test`` (each user's last ``test_share``
    of impressions) with columns ``user``, ``item`` (int ids), ``clicked`` (0/1) and
    ``click_probability`` (float, the ground truth: ranking test rows by it gives the best AUC
    any model can reach on this data).

    What it simulates: sparse implicit feedback with popularity-biased exposure, where most
    (user, item) pairs are never shown. What it does not: time, sessions, prices, positions on
    the page, or the feedback loop in which the recommender chooses what is shown.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be a fraction between 0 and 1, got {test_share}")
    if not 2 <= impressions_per_user <= n_items:
        raise ValueError(
            f"impressions_per_user must be between 2 and n_items={n_items}, "
            f"got {impressions_per_user}"
        )
    from datasets import Dataset, DatasetDict

    rng = np.random.default_rng(seed)
    users = rng.normal(0.0, 1.0 / factors**0.25, (n_users, factors))
    items = rng.normal(0.0, 1.0 / factors**0.25, (n_items, factors))
    appeal = rng.normal(0.0, 0.8, n_items)
    popularity = np.exp(appeal + rng.normal(0.0, 0.7, n_items))  # appealing items sell more
    popularity /= popularity.sum()
    columns = {name: {"train": [], "test": []} for name in ("user", "item", "clicked", "p")}
    cut = impressions_per_user - max(1, round(test_share * impressions_per_user))
    for user in range(n_users):
        shown = rng.choice(n_items, impressions_per_user, replace=False, p=popularity)
        logits = -1.6 + appeal[shown] + 1.7 * items[shown] @ users[user]
        probability = 1.0 / (1.0 + np.exp(-logits))
        clicked = (rng.random(impressions_per_user) < probability).astype(np.int64)
        for position in range(impressions_per_user):
            split = "train" if position < cut else "test"
            columns["user"][split].append(user)
            columns["item"][split].append(int(shown[position]))
            columns["clicked"][split].append(int(clicked[position]))
            columns["p"][split].append(float(probability[position]))
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {
                    "user": columns["user"][split],
                    "item": columns["item"][split],
                    "clicked": columns["clicked"][split],
                    "click_probability": columns["p"][split],
                }
            )
            for split in ("train", "test")
        }
    )
