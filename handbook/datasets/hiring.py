"""Synthetic hiring applicants with a protected group and a proxy feature (chapter 9)."""

from __future__ import annotations

import numpy as np

#: The applicant features of :func:`hiring`, in the order the chapter-9 models read them.
HIRING_FEATURES = ("years_experience", "skill_test", "education", "group", "neighbourhood")


def hiring(
    n: int = 20000,
    seed: int = 0,
    *,
    bias: float = 0.95,
    proxy_agreement: float = 0.85,
    minority_share: float = 0.4,
    test_size: float = 0.25,
):
    """A synthetic hiring history with a known, documented bias against one group (chapter 9).

    Returns a ``datasets.DatasetDict`` (``train``/``test``, stratified by group) of ``n``
    applicants with the columns of :data:`HIRING_FEATURES` and two outcomes:

    - ``years_experience`` (float, years, 0-30), ``skill_test`` (float, points, 0-100),
      ``education`` (int 0-3: none, bachelor, master, doctorate): drawn independently of the
      group, so both groups are equally able;
    - ``group`` (``ClassLabel`` "A"/"B"): the protected attribute; B, the minority, is
      ``minority_share`` of the applicants;
    - ``neighbourhood`` (int 0/1): the proxy. It says nothing about ability, but equals the group
      for a fraction ``proxy_agreement`` of applicants (as a postcode can reveal ethnicity);
    - ``qualified`` (int 0/1): the ground truth, ``merit + noise > 0``, where merit is
      ``0.15 (experience - 5) + 0.06 (skill - 60) + 0.5 (education - 1.3)`` and the noise
      (logistic, scale 0.7) is the part of suitability that no column shows;
    - ``hired`` (int 0/1): the historical decision, ``merit + noise - bias * [group B] > 0``:
      the same decision with a penalty of ``bias`` log-odds against group B. In group A
      ``hired == qualified``; in group B some qualified applicants were turned down.

    The default ``bias`` gives a historical pass-rate gap of about 22 percentage points, which
    a classifier trained on ``hired`` widens to about 28 (the article's figure; 25-30 over
    seeds). The default size keeps the sampling error of a gap measured on the test split near
    1.5 points: with 1,000 test applicants it is 3 points, as large as the effects measured.

    What it simulates: historical labels that encode discrimination, a protected attribute
    and a correlated proxy, so that dropping the attribute does not remove the bias.
    What it does not: real applicant distributions, intersecting or more than two groups,
    bias in the features themselves (unequal access to education, biased test scores), or
    selection bias (only applicants who were hired have an observed performance). The numbers
    are a teaching device, not evidence about any real population.
    """
    if n < 100:
        raise ValueError(f"n must be at least 100 applicants, got {n}")
    for name, value in (("proxy_agreement", proxy_agreement), ("minority_share", minority_share)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1, got {value}")
    if not 0.0 < minority_share < 1.0:
        raise ValueError(f"minority_share must leave both groups non-empty, got {minority_share}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Value

    rng = np.random.default_rng(seed)
    group = (rng.random(n) < minority_share).astype(np.int64)
    neighbourhood = np.where(rng.random(n) < proxy_agreement, group, 1 - group)
    experience = np.clip(rng.gamma(2.0, 2.5, n), 0.0, 30.0)
    skill = np.clip(rng.normal(60.0, 15.0, n), 0.0, 100.0)
    education = rng.choice(4, size=n, p=[0.2, 0.4, 0.3, 0.1])
    merit = 0.15 * (experience - 5.0) + 0.06 * (skill - 60.0) + 0.5 * (education - 1.3)
    suitability = merit + rng.logistic(0.0, 0.7, n)
    features = Features(
        {
            "years_experience": Value("float32"),
            "skill_test": Value("float32"),
            "education": Value("int64"),
            "group": ClassLabel(names=["A", "B"]),
            "neighbourhood": Value("int64"),
            "qualified": Value("int64"),
            "hired": Value("int64"),
        }
    )
    table = Dataset.from_dict(
        {
            "years_experience": experience.astype(np.float32),
            "skill_test": skill.astype(np.float32),
            "education": education.astype(np.int64),
            "group": group,
            "neighbourhood": neighbourhood.astype(np.int64),
            "qualified": (suitability > 0).astype(np.int64),
            "hired": (suitability - bias * group > 0).astype(np.int64),
        },
        features=features,
    )
    return table.train_test_split(test_size=test_size, seed=seed, stratify_by_column="group")
