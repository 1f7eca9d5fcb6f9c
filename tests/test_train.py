import pytest
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from handbook import train


def _separable_problem(n=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 2, generator=generator)
    targets = (inputs[:, 0] + inputs[:, 1] > 0).long()
    return inputs, targets


def test_set_seed_makes_runs_repeatable():
    train.set_seed(3)
    first = torch.randn(4)
    train.set_seed(3)
    assert torch.equal(first, torch.randn(4))


def test_pick_device_defaults_to_an_available_device():
    device = train.pick_device()
    assert device.type in {"cpu", "cuda", "mps"}
    assert train.pick_device("cpu").type == "cpu"


def test_make_loader_rejects_misaligned_tensors():
    with pytest.raises(ValueError, match="as many inputs as targets, got 3 and 2"):
        train.make_loader(torch.zeros(3, 1), torch.zeros(2), batch_size=2, shuffle=False)


def test_fit_learns_a_separable_problem_and_records_history():
    inputs, targets = _separable_problem()
    loader = train.make_loader(inputs, targets, batch_size=32, shuffle=True)
    train.set_seed(0)
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = train.fit(
        model,
        loader,
        epochs=4,
        optimizer=optimizer,
        scheduler=scheduler,
        val_loader=loader,
        progress=False,
    )
    assert len(history.train_loss) == len(history.val_accuracy) == 4
    assert history.learning_rate == [0.5, 0.25, 0.125, 0.0625]
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_accuracy[-1] > 0.95
    assert history.total_seconds > 0


def test_fit_is_reproducible_with_the_same_seed():
    inputs, targets = _separable_problem()
    losses = []
    for _ in range(2):
        train.set_seed(1)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        loader = train.make_loader(inputs, targets, batch_size=16, shuffle=True, seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses.append(
            train.fit(model, loader, epochs=2, optimizer=optimizer, progress=False).train_loss
        )
    assert losses[0] == losses[1]


def test_evaluate_agrees_with_scikit_learn():
    inputs, targets = _separable_problem(n=100, seed=2)
    model = nn.Linear(2, 2)
    loader = train.make_loader(inputs, targets, batch_size=7, shuffle=False)
    loss, accuracy = train.evaluate(model, loader)
    predictions = train.predict(model, inputs, batch_size=9)
    assert accuracy == pytest.approx(accuracy_score(targets, predictions))
    with torch.no_grad():
        expected_loss = nn.functional.cross_entropy(model(inputs), targets)
    assert loss == pytest.approx(float(expected_loss), rel=1e-5)


def test_evaluate_refuses_an_empty_loader():
    loader = train.make_loader(
        torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), batch_size=4, shuffle=False
    )
    with pytest.raises(ValueError, match="empty loader"):
        train.evaluate(nn.Linear(2, 2), loader)


def test_fit_rejects_zero_epochs():
    loader = train.make_loader(*_separable_problem(n=8), batch_size=4, shuffle=False)
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        train.fit(model, loader, epochs=0, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_fit_under_cpu_autocast_uses_bfloat16():
    inputs, targets = _separable_problem(n=64)
    loader = train.make_loader(inputs, targets, batch_size=16, shuffle=False)
    model = nn.Linear(2, 2)
    dtypes = []
    model.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    history = train.fit(
        model,
        loader,
        epochs=1,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        use_autocast=True,
        device="cpu",
        progress=False,
    )
    assert set(dtypes) == {torch.bfloat16}
    assert history.train_loss[0] > 0


def test_sequence_targets_count_accuracy_per_token_ignoring_padding():
    class Echo(nn.Module):
        """Logits that predict each source token: (batch, seq) -> (batch, seq, vocab)."""

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, source, target_in):
            return nn.functional.one_hot(source, 5).float() * self.scale + 0 * target_in[..., None]

    source = torch.tensor([[1, 2, 3], [4, 4, 0]])
    targets = torch.tensor([[1, 2, 0], [4, train.IGNORE_INDEX, train.IGNORE_INDEX]])
    loader = train.make_loader(source, source, targets, batch_size=2, shuffle=False)
    loss_fn = lambda logits, target: nn.functional.cross_entropy(logits.transpose(1, 2), target)  # noqa: E731
    _, accuracy = train.evaluate(Echo(), loader, loss_fn)
    assert accuracy == pytest.approx(3 / 4)  # 4 counted tokens, the third of the first row wrong
