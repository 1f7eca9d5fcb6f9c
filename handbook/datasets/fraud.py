"""Users' event sequences with planted fraud patterns, some visible only in the order of events
(chapter 6)."""

from __future__ import annotations

import numpy as np

from handbook.datasets.base import stratified_split

#: The events of :func:`fraud_sequences`, in the order their ids are given (0 is kept for padding).
FRAUD_EVENTS = (
    "login",
    "login_new_device",
    "browse",
    "click",
    "add_to_cart",
    "buy",
    "buy_high_value",
    "payment_failed",
    "add_payment_method",
    "change_password",
    "change_address",
)


#: How :func:`fraud_sequences` made each user: three legitimate behaviours, three kinds of fraud.
FRAUD_PATTERNS = {
    "ordinary": "legitimate: shopping sessions with a few account events at random",
    "decoy": "legitimate: also logs in on a new device, changes the password and buys something "
    "expensive, in any order, at ordinary moments",
    "lookalike": "legitimate: does exactly what an account takeover does (a new phone, a password "
    "reset, an immediate big purchase)",
    "account takeover": "fraud: a new-device login, a password change and a high-value purchase, "
    "in that order, within minutes",
    "card testing": "fraud: a new payment method, then a burst of failed and small payments",
    "hidden": "fraud that leaves no trace in the events (a chargeback on an ordinary purchase)",
}


#: Within-session steps of an ordinary shopping session: a small Markov chain over the funnel,
#: ``{state: cumulative probabilities of the next step}`` over :data:`_SESSION_STEPS`.
_SESSION_STEPS = ("browse", "click", "add_to_cart", "buy", "end")


_SESSION_CUMULATIVE = {
    "login": (1.0, 1.0, 1.0, 1.0, 1.0),
    "browse": (0.40, 0.85, 0.85, 0.85, 1.0),
    "click": (0.40, 0.60, 0.90, 0.90, 1.0),
    "add_to_cart": (0.30, 0.30, 0.30, 0.80, 1.0),
    "buy": (0.30, 0.30, 0.30, 0.30, 1.0),
}


_TAKEOVER_STEPS = ("login_new_device", "change_password", "buy_high_value")


#: The pace of events, by the kind of gap before them: (median minutes, spread of the log).
#: Kinds: 0 the first event (0 minutes), 1 a new session, 2 within a session, 3 a fraudster's
#: scripted step.
_GAP_MEDIAN_MINUTES = np.array([0.0, 600.0, 0.5, 0.3])


_GAP_LOG_SPREAD = np.array([0.0, 1.2, 1.0, 0.8])


_NEW_SESSION, _IN_SESSION, _SCRIPTED = 1, 2, 3


def fraud_sequences(
    n_users: int = 10000,
    seed: int = 0,
    *,
    fraud_rate: float = 0.1,
    takeover_share: float = 0.4,
    hidden_share: float = 0.1,
    decoy_rate: float = 0.15,
    lookalike_rate: float = 0.005,
    test_size: float = 0.4,
):
    """Users' behaviour sequences with known fraud, some of it visible only in the order of
    events (chapter 6).

    Returns a ``datasets.DatasetDict`` (``train``/``test``, stratified by ``fraud``) with a row
    per user:

    - ``events`` (list of str, 4-70 of :data:`FRAUD_EVENTS`, 25 on average): two to five shopping
      sessions (a login, then browse/click/add-to-cart/buy steps of a Markov chain) with
      occasional account events at random places inside them (failed payments, a new payment
      method, an address change; rarely a new-device login, a password change or a high-value
      purchase);
    - ``minutes`` (list of float, one per event): minutes since the previous event (0 for the
      first), log-normal around 0.5 within a session, 600 (10 hours) before a session, 0.3
      between the steps of a fraudster's script;
    - ``fraud`` (``ClassLabel`` "legitimate"/"fraud") and ``pattern`` (str, a key of
      :data:`FRAUD_PATTERNS`): how the row was made.

    A share ``fraud_rate`` of users are fraudsters: ``takeover_share`` of them take over the
    account, ``hidden_share`` leave no trace, the rest test stolen cards. Card testing shows in
    the counts of events (several failed payments after a new payment method). Account
    takeover does not: a ``decoy_rate`` share of legitimate users do the same three things
    (new-device login, password change, high-value purchase) at ordinary moments and in any
    order, with as many extra browse/click events as the fraudster's script holds, so the
    counts of every event type have the same distribution for both; only the order and the
    timing differ (the fraudster's three steps form a session of their own, in that order,
    within minutes, with at most two browse/click events between two steps). A ``lookalike_rate``
    share of legitimate users do exactly what a fraudster does: no model can tell them apart.

    What it simulates: the behaviour sequences of a shop's accounts, where a count-based rules
    engine or a model on aggregates sees one kind of fraud and is blind to another, and where
    part of the fraud cannot be seen at all. What it does not: real base rates (fraud is far
    rarer than 10% in practice), fraudsters who adapt to the model, devices, amounts, IP
    addresses or any feature beyond the event type and its time, delayed or wrong labels, or
    drift over time. The gain of a sequence model here is set by ``takeover_share`` and
    ``decoy_rate``: it illustrates the mechanism, not the size of any real system's gain.
    """
    if n_users < 50:
        raise ValueError(f"n_users must be at least 50, got {n_users}")
    for name, value in (
        ("fraud_rate", fraud_rate),
        ("takeover_share", takeover_share),
        ("hidden_share", hidden_share),
        ("decoy_rate", decoy_rate),
        ("lookalike_rate", lookalike_rate),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a fraction between 0 and 1, got {value}")
    if takeover_share + hidden_share > 1.0:
        raise ValueError(
            f"takeover_share + hidden_share must be at most 1 (the rest is card testing), "
            f"got {takeover_share} + {hidden_share}"
        )
    if decoy_rate + lookalike_rate > 1.0:
        raise ValueError(
            f"decoy_rate + lookalike_rate must be at most 1, got {decoy_rate} + {lookalike_rate}"
        )
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size}")
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rng = np.random.default_rng(seed)
    is_fraud = rng.random(n_users) < fraud_rate
    fraud_kind = rng.choice(
        ["account takeover", "hidden", "card testing"],
        size=n_users,
        p=[takeover_share, hidden_share, max(0.0, 1.0 - takeover_share - hidden_share)],
    )
    legitimate_kind = rng.choice(
        ["decoy", "lookalike", "ordinary"],
        size=n_users,
        p=[decoy_rate, lookalike_rate, max(0.0, 1.0 - decoy_rate - lookalike_rate)],
    )
    patterns = np.where(is_fraud, fraud_kind, legitimate_kind).tolist()
    events, gap_kinds = [], []
    for pattern in patterns:
        user_events, user_gaps = _user_sequence(pattern, rng)
        events.append(user_events)
        gap_kinds.append(user_gaps)
    kinds = np.concatenate(gap_kinds)
    minutes = _GAP_MEDIAN_MINUTES[kinds] * np.exp(
        _GAP_LOG_SPREAD[kinds] * rng.standard_normal(len(kinds))
    )
    boundaries = np.cumsum([len(user) for user in gap_kinds])[:-1]
    features = Features(
        {
            "user": Value("int64"),
            "events": Sequence(Value("string")),
            "minutes": Sequence(Value("float32")),
            "fraud": ClassLabel(names=["legitimate", "fraud"]),
            "pattern": Value("string"),
        }
    )
    table = Dataset.from_dict(
        {
            "user": list(range(n_users)),
            "events": events,
            "minutes": np.split(minutes.round(3).astype(np.float32), boundaries),
            "fraud": is_fraud.astype(np.int64),
            "pattern": patterns,
        },
        features=features,
    )
    return stratified_split(table, is_fraud.astype(np.int64), test_size, rng)


def _shopping_sessions(rng: np.random.Generator) -> list[list[tuple[str, int]]]:
    """Two to five sessions, each a list of ``(event, kind of gap before it)``."""
    sessions = []
    for _ in range(int(rng.integers(2, 6))):
        session, state = [("login", _NEW_SESSION)], "login"
        while len(session) < 12:
            draw = rng.random()
            state = next(
                step
                for step, bound in zip(_SESSION_STEPS, _SESSION_CUMULATIVE[state], strict=True)
                if draw < bound
            )
            if state == "end":
                break
            session.append((state, _IN_SESSION))
        sessions.append(session)
    return sessions


def _scripted_session(
    steps: tuple[str, ...], rng: np.random.Generator
) -> tuple[list[tuple[str, int]], int]:
    """A fraudster's script: ``steps`` in order, each step after the first preceded by zero,
    one or two browse/click events. Returns the session and how many of those it has."""
    session, fillers = [(steps[0], _NEW_SESSION)], 0
    for step in steps[1:]:
        for _ in range(int(rng.integers(0, 3))):
            session.append(("browse" if rng.random() < 0.5 else "click", _SCRIPTED))
            fillers += 1
        session.append((step, _SCRIPTED))
    return session, fillers


def _user_sequence(pattern: str, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """One user's events and the kinds of gap before them, for a key of
    :data:`FRAUD_PATTERNS`."""
    sessions = _shopping_sessions(rng)
    scattered = ["payment_failed"] * int(rng.poisson(0.4))
    for event, probability in (
        ("add_payment_method", 0.1),
        ("change_address", 0.05),
        ("login_new_device", 0.05),
        ("change_password", 0.05),
        ("buy_high_value", 0.05),
    ):
        if rng.random() < probability:
            scattered.append(event)
    script = None
    if pattern in ("account takeover", "lookalike"):
        script, _ = _scripted_session(_TAKEOVER_STEPS, rng)
    elif pattern == "card testing":
        tries = int(rng.integers(2, 7))
        burst = ["payment_failed" if rng.random() < 0.7 else "buy" for _ in range(tries)]
        script, _ = _scripted_session(("add_payment_method", *burst), rng)
    elif pattern == "decoy":  # the takeover's events, fillers included, at ordinary moments
        _, fillers = _scripted_session(_TAKEOVER_STEPS, rng)
        scattered += _TAKEOVER_STEPS
        scattered += ["browse" if rng.random() < 0.5 else "click" for _ in range(fillers)]
    for event in scattered:
        session = sessions[int(rng.integers(len(sessions)))]
        session.insert(int(rng.integers(1, len(session) + 1)), (event, _IN_SESSION))
    if script is not None:
        sessions.insert(int(rng.integers(1, len(sessions) + 1)), script)
    events = [event for session in sessions for event, _ in session]
    kinds = [kind for session in sessions for _, kind in session]
    kinds[0] = 0
    return events, kinds
