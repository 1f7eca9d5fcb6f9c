"""Chapter 1's claims (``01_attention``): C1, the article's attention code, and C2, residual
connections against vanishing gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from handbook.claims import Finding
from handbook.i18n import N_

C1_CLAIM = N_(
    "A Transformer relates tokens with scaled dot-product attention; the article prints a "
    "single-head bmm/softmax implementation"
)
C1_ARTICLE = N_("code listing (single head, no mask)")
#: Two correct float32 implementations differ only by rounding (about 1e-7 relative on values of
#: order 1); 1e-5 leaves room for another summation order, not for a wrong formula.
C1_TOLERANCE = 1e-5

C2_CLAIM = N_("Residual connections around the blocks of a deep stack ease vanishing gradients")
C2_ARTICLE = N_("qualitative")
#: A stack "trains" when its final loss is this far under the loss of guessing (chance), a
#: margin that a loss curve's wobble around chance does not reach.
C2_LEARNED_MARGIN = 0.15
#: Gradients "vanish" without residuals when the first/last layer gradient-norm ratio of the
#: plain stack is under a tenth of the residual stack's: an order of magnitude, not noise.
C2_VANISHING_FACTOR = 0.1


def c1(*, max_difference: float, float16_overflows: bool) -> Finding:
    """C1 from the largest absolute difference between the article's snippet and torch's SDPA
    (float32) and whether the snippet gave NaN in float16."""
    return Finding(
        "C1",
        claim=C1_CLAIM,
        article_value=C1_ARTICLE,
        measured=max_difference,
        unit=N_("max |difference| vs torch SDPA (float32)"),
        verdict="reproduced" if max_difference < C1_TOLERANCE else "not reproduced",
        note=N_(
            "Runs once the line breaks lost in print are restored (the only fix). Lacks masks, "
            "multi-head and 4-D inputs (torch.bmm is 3-D only). In float16 it forms Q K^T before "
            "scaling: scores above 65504 overflow to inf -> NaN (NaN here: {float16_overflows}); "
            "torch SDPA and handbook.models do not. Section 5 measures 'no sequential "
            "dependency': an LSTM layer runs L dependent steps, attention 1."
        ).format(float16_overflows=float16_overflows),
    )


def trains(final_loss: float, chance_loss: float) -> bool:
    """Whether a stack learned: its final loss is :data:`C2_LEARNED_MARGIN` under chance."""
    return final_loss < chance_loss - C2_LEARNED_MARGIN


def c2(
    *,
    final_loss: Mapping[str, float],
    chance_loss: float,
    gradient_norms: Mapping[str, Sequence[float]],
    depth: int,
    steps: int,
) -> Finding:
    """C2 from the final losses (mean of the last steps) of the stacks "with residual" and
    "without residual", the loss of guessing, each stack's gradient norm per layer at
    initialisation (first layer first), the number of blocks and of training steps."""
    with_residual, without = gradient_norms["with residual"], gradient_norms["without residual"]
    if trains(final_loss["with residual"], chance_loss) and not trains(
        final_loss["without residual"], chance_loss
    ):
        ratio_with, ratio_without = with_residual[0] / with_residual[-1], without[0] / without[-1]
        vanishing = ratio_without < C2_VANISHING_FACTOR * ratio_with
        verdict = "reproduced" if vanishing else "partly reproduced"
    else:
        verdict = "not reproduced"
    return Finding(
        "C2",
        claim=C2_CLAIM,
        article_value=C2_ARTICLE,
        measured=final_loss["without residual"] - final_loss["with residual"],
        unit=N_("loss gap after {steps} steps (no residual - residual)").format(steps=steps),
        verdict=verdict,
        note=N_(
            "{depth} post-norm encoder blocks (d_model 64), previous-token task over 16 "
            "token values, Adam lr 3e-4, batch 32. Loss after {steps} steps: "
            "with residual {loss_with:.3f}, without {loss_without:.3f} (chance {chance:.3f}). "
            "Gradient norm at init, layer 1 / layer {depth}: with residual {first_with:.3f} / "
            "{last_with:.3f}, without {first_without:.3f} / {last_without:.3f}."
        ).format(
            depth=depth,
            steps=steps,
            loss_with=final_loss["with residual"],
            loss_without=final_loss["without residual"],
            chance=chance_loss,
            first_with=with_residual[0],
            last_with=with_residual[-1],
            first_without=without[0],
            last_without=without[-1],
        ),
    )
