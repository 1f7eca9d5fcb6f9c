"""Chapter 5's claims (``05_serving``): C15, elastic scaling's utilization; C16, the REST
endpoint; C17, monitoring with Prometheus and Grafana."""

from __future__ import annotations

from collections.abc import Mapping

from handbook.claims import Finding
from handbook.i18n import N_

C15_CLAIM = N_("Docker + Kubernetes elastic scaling raise resource utilization by 40%")
C15_ARTICLE = N_("+40% resource utilization")

C16_CLAIM = N_("A RESTful FastAPI POST /predict endpoint")
C16_ARTICLE = N_("POST /predict with text as a query parameter")

C17_CLAIM = N_("Prometheus + Grafana track QPS, latency and error rate in real time")
C17_ARTICLE = N_("QPS, latency and error rate tracked")


def c15(*, capacity: float, gains: Mapping[float, float]) -> Finding:
    """C15, "not measurable here" whatever was simulated: utilization is a property of a cluster
    and its traffic. The note gives the simulated autoscaler's utilization gain (a fraction) by
    the quietest hour's share of the peak (0.2, 0.6 and 1.0 are quoted), for replicas of
    ``capacity`` requests per second."""
    return Finding(
        "C15",
        claim=C15_CLAIM,
        article_value=C15_ARTICLE,
        measured=None,
        unit="",
        verdict="not measurable here",
        note=N_(
            "utilization is a property of a cluster and its traffic, and this is one machine; "
            "simulating deploy/k8s/hpa.yaml's autoscaler (2-10 replicas of {capacity:.0f} "
            "req/s, the INT8 server measured here) over a day whose quietest hour has 20% of "
            "the peak gives {gain_20:+.0%} utilization ({gain_60:+.0%} at 60%, "
            "{gain_flat:+.0%} for flat traffic): the 40% is plausible for diurnal traffic; the "
            "traffic's shape sets it"
        ).format(capacity=capacity, gain_20=gains[0.2], gain_60=gains[0.6], gain_flat=gains[1.0]),
    )


def c16(*, answered_right: int, malformed: int) -> Finding:
    """C16 from how many of the ``malformed`` requests sent got the right 4xx answer: the endpoint
    is reproduced when every one did (a 5xx or a wrong 4xx is the endpoint failing)."""
    every_one = answered_right == malformed
    answered = (
        N_(
            "answered all {malformed} malformed requests with a 4xx naming the problem, none "
            "with a 5xx"
        ).format(malformed=malformed)
        if every_one
        else N_(
            "answered {answered_right} of {malformed} malformed requests with the right 4xx"
        ).format(answered_right=answered_right, malformed=malformed)
    )
    return Finding(
        "C16",
        claim=C16_CLAIM,
        article_value=C16_ARTICLE,
        measured=100 * answered_right / malformed,
        unit=N_("% of {malformed} malformed requests answered with the right 4xx").format(
            malformed=malformed
        ),
        verdict="reproduced" if every_one else "not reproduced",
        note=N_(
            "the endpoint works as FastAPI; the article's signature reads text from the query "
            "string and ignores a JSON body (422), so the book takes a validated JSON body "
            "(text or up to 32 texts), returns the model version, and {answered}"
        ).format(answered=answered),
    )


def c17(
    *,
    miscounted: int,
    sent: int,
    requests: int,
    mean_qps: float,
    mean_error_rate: float,
    server_p99_ms: float,
    client_p99_ms: float,
) -> Finding:
    """C17 from how many of the ``sent`` requests the server's counters miscounted (by status),
    the load test's size (``requests``, 1 in 20 invalid), the mean QPS and error rate (a
    fraction) on the dashboard, and the p99 latency in milliseconds at the server and at the
    client. Tracking is reproduced when the counters miss no request."""
    counted = (
        N_("counters by status equal the requests sent")
        if miscounted == 0
        else N_("counters by status miss {miscounted} of the requests sent").format(
            miscounted=miscounted
        )
    )
    return Finding(
        "C17",
        claim=C17_CLAIM,
        article_value=C17_ARTICLE,
        measured=miscounted,
        unit=N_("requests miscounted out of {sent} sent").format(sent=sent),
        verdict="reproduced" if miscounted == 0 else "not reproduced",
        note=N_(
            "32 clients, {requests} requests (1 in 20 invalid) to the INT8 server, "
            "scraped every 0.5 s: {counted}; mean {mean_qps:.0f} QPS, error rate "
            "{mean_error_rate:.1%}, server-side p99 {server_p99_ms:.1f} ms vs "
            "{client_p99_ms:.1f} ms at the client; deploy/grafana holds the dashboard"
        ).format(
            requests=requests,
            counted=counted,
            mean_qps=mean_qps,
            mean_error_rate=mean_error_rate,
            server_p99_ms=server_p99_ms,
            client_p99_ms=client_p99_ms,
        ),
    )
