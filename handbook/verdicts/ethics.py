"""Chapter 9's claim (``09_ethics``): C22, bias mitigation and adversarial training."""

from __future__ import annotations

from handbook.claims import Finding
from handbook.i18n import N_

C22_CLAIM = N_(
    "Bias mitigation cut a hiring system's pass-rate gap from 28% to under 5%; "
    "adversarial training with FGSM raised robustness by 40%"
)
C22_ARTICLE = N_("gap 28% -> <5%; robustness +40%")
#: The article's figures: a pass-rate gap under 5 points after mitigation, and robustness up 40
#: (read as percentage points of accuracy under FGSM).
C22_ARTICLE_GAP = 5.0
C22_ARTICLE_ROBUSTNESS_GAIN = 40.0


def c22(
    *,
    gap_before: float,
    gap_after: float,
    gap_after_error: float,
    test_applicants: int,
    fairlearn_gap: float,
    accuracy_cost: float,
    truth_change: float,
    epsilon: float,
    fgsm_plain: float,
    fgsm_trained: float,
    fgsm_gain: float,
    fgsm_gain_std: float,
    cnn_seeds: int,
    pgd_steps: int,
    pgd_gain: float,
    clean_cost: float,
) -> Finding:
    """C22 from the hiring model's pass-rate gap between groups before and after per-group
    thresholds (percentage points, the latter with its standard error over ``test_applicants``),
    fairlearn's ThresholdOptimizer's gap, the accuracy cost against the historical labels and the
    change against true qualification (points); then, for the digits CNN at ``epsilon``, the mean
    accuracy under FGSM (percent) of the plain and the adversarially trained model, the gain
    (points) and its seed-to-seed standard deviation over ``cnn_seeds`` seeds, the gain under
    PGD and the clean-accuracy cost. Each half of the claim that holds counts."""
    fairness_holds = gap_after < C22_ARTICLE_GAP
    robustness_holds = fgsm_gain >= C22_ARTICLE_ROBUSTNESS_GAIN
    if fairness_holds and robustness_holds:
        verdict = "reproduced"
    else:
        verdict = "partly reproduced" if fairness_holds or robustness_holds else "not reproduced"
    spread = (
        N_(", seed-to-seed standard deviation {deviation:.1f} pp").format(deviation=fgsm_gain_std)
        if cnn_seeds > 1
        else ""
    )
    return Finding(
        "C22",
        claim=C22_CLAIM,
        article_value=C22_ARTICLE,
        measured=float(gap_after),
        unit=N_("pp pass-rate gap after mitigation"),
        verdict=verdict,
        note=N_(
            "synthetic hiring data (the starting gap is set by the generator): plain model "
            "{gap_before:.1f} pp -> {gap_after:.1f} ± {gap_after_error:.1f} pp (standard error, "
            "{test_applicants} test applicants) with per-group thresholds "
            "(fairlearn ThresholdOptimizer {fairlearn_gap:.1f} pp), "
            "accuracy vs historical labels -{accuracy_cost:.1f} pp "
            "(vs true qualification {truth_change:+.1f} pp); digits CNN at eps={epsilon}: "
            "FGSM accuracy {fgsm_plain:.1f}% -> {fgsm_trained:.1f}%, "
            "gain {fgsm_gain:+.1f} pp (mean over {cnn_seeds} seed(s){spread}; "
            "under PGD-{pgd_steps} {pgd_gain:+.1f} pp), clean accuracy cost {clean_cost:+.1f} pp"
        ).format(
            gap_before=gap_before,
            gap_after=gap_after,
            gap_after_error=gap_after_error,
            test_applicants=test_applicants,
            fairlearn_gap=fairlearn_gap,
            accuracy_cost=accuracy_cost,
            truth_change=truth_change,
            epsilon=epsilon,
            fgsm_plain=fgsm_plain,
            fgsm_trained=fgsm_trained,
            fgsm_gain=fgsm_gain,
            cnn_seeds=cnn_seeds,
            spread=spread,
            pgd_steps=pgd_steps,
            pgd_gain=pgd_gain,
            clean_cost=clean_cost,
        ),
    )
