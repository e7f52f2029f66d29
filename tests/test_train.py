"""Training loop: determinism, the sparsity invariant, metrics, exit analysis and sweep helpers."""

from __future__ import annotations

import math

import pytest
import torch

from mcuflow.data import load_mnist
from mcuflow.errors import ConfigError
from mcuflow.nn import build_model, paper_config
from mcuflow.nn.exits_analysis import analyse_logits, at_exit_fraction, evaluate_threshold, format_table, plot
from mcuflow.nn.sparse import SparseLinear
from mcuflow.nn.sweep import TABLE_I, count_params, write_csv
from mcuflow.nn.sweep import plot as sweep_plot
from mcuflow.nn.train import TrainConfig, build_and_train, evaluate


@pytest.fixture(scope="module")
def small(mnist_dir):
    train = load_mnist("train", mnist_dir, download=False).subset(3000).tensors()
    test = load_mnist("test", mnist_dir, download=False).subset(1000).tensors()
    return train, test


def test_training_learns_and_reports(small):
    train, test = small
    res = build_and_train(
        paper_config(), train, test, TrainConfig(epochs=3, lr=2e-2, batch_size=128), show_progress=False
    )
    m = res.metrics
    assert m["params"]["main_path"] == 2450 and m["params"]["exits"] == [410]
    assert m["accuracy"]["final"] > 0.6 and m["accuracy"]["exits"][0] > 0.6  # chance is 0.1
    dens = [j["density"] for j in m["junctions"]]
    assert dens == pytest.approx([40 / 800, 9 / 40, 1.0])
    assert [j["edges"] for j in m["junctions"]] == [1600, 360, 400]
    assert len(res.history) == 3 and res.history[-1]["loss"] < res.history[0]["loss"]


def test_deterministic_given_seed(small):
    train, test = small
    cfg = TrainConfig(epochs=1, seed=7)
    a = build_and_train(paper_config(), train, test, cfg, show_progress=False)
    b = build_and_train(paper_config(), train, test, cfg, show_progress=False)
    c = build_and_train(paper_config(), train, test, TrainConfig(epochs=1, seed=8), show_progress=False)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_pattern_fixed_through_training(small):
    train, _ = small
    torch.manual_seed(0)
    model = build_model(paper_config(pattern="random"))
    layers = [m for m in model.modules() if isinstance(m, SparseLinear)]
    masks = [m.mask().clone() for m in layers]
    cols = [m.columns.clone() for m in layers]
    from mcuflow.nn.train import train as train_fn

    train_fn(model, train, None, TrainConfig(epochs=1, optimizer="sgd", lr=0.05), show_progress=False)
    for layer, mask, col in zip(layers, masks, cols, strict=True):
        assert torch.equal(layer.columns, col)
        assert (layer.dense_weight()[~mask] == 0).all()


@pytest.mark.parametrize(
    "bad",
    [
        dict(epochs=0),
        dict(lr=-1.0),
        dict(optimizer="rmsprop"),
        dict(schedule="poly"),
        dict(exit_weights=[1, 1]),
        dict(exit_weights=[0.0], final_weight=0.0),
    ],
)
def test_bad_train_config(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad).validate(n_exits=1)


@pytest.mark.parametrize("schedule", ["none", "cosine", "step"])
def test_schedules_run(small, schedule):
    train, test = small
    res = build_and_train(
        paper_config(exits=[]),
        (train[0][:512], train[1][:512]),
        test,
        TrainConfig(epochs=1, schedule=schedule),
        show_progress=False,
    )
    assert res.metrics["accuracy"]["exits"] == [] and 0 <= res.metrics["accuracy"]["final"] <= 1


def test_exit_analysis_on_constructed_logits():
    labels = torch.tensor([0, 1, 2, 3])
    # exit: confident and right on 0,1; unsure and wrong on 2,3. final: right on all but 0.
    exit_logits = torch.tensor([[9.0, 0, 0, 0], [0, 9.0, 0, 0], [0, 0, 0, 0.1], [0.1, 0, 0, 0]])
    final = torch.tensor([[0, 5.0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 5.0]])
    r = evaluate_threshold([exit_logits], final, labels, 0.9, "max_prob")
    assert r["exit_fraction"] == 0.5 and r["exited_accuracy"] == 1.0 and r["end_to_end_accuracy"] == 1.0
    r = evaluate_threshold([exit_logits], final, labels, 0.0, "max_prob")
    assert r["exit_fraction"] == 1.0 and r["end_to_end_accuracy"] == 0.5
    r = evaluate_threshold([exit_logits], final, labels, 1e-9, "entropy")
    assert r["exit_fraction"] == 0.0 and r["end_to_end_accuracy"] == 0.75
    f = at_exit_fraction(exit_logits, final, labels, 0.5, "entropy")
    assert f["exit_fraction"] == 0.5 and f["end_to_end_accuracy"] == 1.0
    f = at_exit_fraction(exit_logits, final, labels, 0.75, "max_prob")
    assert f["end_to_end_accuracy"] == 0.75


def test_exit_analysis_table_and_plot(tmp_path, small):
    train, test = small
    res = build_and_train(paper_config(), train, test, TrainConfig(epochs=1), show_progress=False)
    ev = evaluate(res.model, *test)
    from mcuflow.nn.train import predict

    exits, final = predict(res.model, test[0])
    analysis = analyse_logits(exits, final, test[1])
    assert analysis.final_accuracy == pytest.approx(ev["final"])
    rows = analysis.sweeps["max_prob"]
    fracs = [r["exit_fraction"] for r in rows]
    assert fracs == sorted(fracs, reverse=True)  # higher threshold, fewer exit
    assert [r["exit_fraction"] for r in analysis.fractions["max_prob"]] == pytest.approx([0.5, 0.7, 0.9])
    text = format_table(analysis)
    assert "end-to-end" in text and "entropy" in text
    png = plot(analysis, tmp_path / "exits.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not math.isnan(analysis.fractions["entropy"][0]["end_to_end_accuracy"])


def test_table_one_parameter_counts():
    ours = {(r.family, r.sizes): count_params(r) for r in TABLE_I}
    sparse = [count_params(r) for r in TABLE_I if r.family == "sparse"]
    assert sparse == [2450, 4090, 5730, 11570, 16650]
    assert ours[("deep", (800, 3, 3, 10))] == 2455 and ours[("shallow", (800, 3, 10))] == 2443
    for r in TABLE_I[3:]:  # from the second row on, our counts equal the paper's
        assert count_params(r) == r.paper_params


def test_sweep_outputs(tmp_path):
    rows = [
        dict(
            level=1,
            family=f,
            sizes="800 3 10",
            out_degrees="",
            seed=0,
            params=p,
            paper_params=p,
            accuracy=a,
            paper_accuracy=a - 1,
            delta=1.0,
            train_time_s=1.0,
        )
        for f, p, a in [("sparse", 2450, 94.0), ("deep", 2455, 80.0), ("shallow", 2443, 81.0), ("sparse", 4090, 95.0)]
    ]
    csv_path = write_csv(rows, tmp_path / "t.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("level,family") and len(lines) == 5
    assert sweep_plot(rows, tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_distill_loss_is_zero_only_when_student_matches_teacher():
    from mcuflow.nn.distill import distill_loss

    t = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    assert float(distill_loss(t.clone(), t, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(t + 5.0, t, 4.0)) == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift
    assert float(distill_loss(t.flip(1), t, 4.0)) > 0.01


def test_distillation_trains_and_differs_from_plain_training(small):
    from mcuflow.nn.distill import TeacherSpec, teacher_logits

    train, test = small
    logits, info = teacher_logits(TeacherSpec(hidden=(64,)), train, epochs=5)
    assert logits.shape == (len(train[0]), 10) and info["teacher_train_accuracy"] > 0.8
    plain = build_and_train(paper_config(), train, test, TrainConfig(epochs=3, lr=2e-2), show_progress=False)
    kd_cfg = TrainConfig(epochs=3, lr=2e-2, distill_weight=0.7, distill_temperature=3.0)
    kd = build_and_train(paper_config(), train, test, kd_cfg, show_progress=False, teacher_logits=logits)
    assert kd.metrics["accuracy"]["final"] > 0.5 and kd.metrics["accuracy"]["exits"][0] > 0.5  # it learns
    assert kd.history[0]["loss"] != pytest.approx(plain.history[0]["loss"], rel=1e-3)  # the KL term is in the loss
    sp, sk = plain.model.state_dict(), kd.model.state_dict()
    assert not all(torch.equal(sp[k], sk[k]) for k in sp)
    assert kd.metrics["training"]["distill_weight"] == 0.7
    assert "distill_weight" not in plain.metrics["training"]  # plain runs record what they always did
    # weight 0 ignores the teacher entirely: bit-identical to plain training
    same = build_and_train(
        paper_config(), train, test, TrainConfig(epochs=3, lr=2e-2), show_progress=False, teacher_logits=logits
    )
    assert all(torch.equal(sp[k], same.model.state_dict()[k]) for k in sp)


@pytest.mark.parametrize("teacher", [None, torch.zeros(5, 10)])
def test_distillation_needs_matching_teacher_logits(small, teacher):
    train, _ = small
    with pytest.raises(ConfigError, match="teacher"):
        build_and_train(paper_config(), train, None, TrainConfig(epochs=1, distill_weight=0.5), teacher_logits=teacher)


@pytest.mark.parametrize("bad", [dict(distill_weight=1.5), dict(distill_weight=-0.1), dict(distill_temperature=0.0)])
def test_bad_distillation_config(bad):
    with pytest.raises(ConfigError, match="distillation"):
        TrainConfig(**bad).validate(n_exits=1)


@pytest.mark.parametrize("text", ["dense:", "dense:0", "dense:a", "/no/such/teacher.pt"])
def test_bad_teacher_spec(text):
    from mcuflow.nn.distill import parse_teacher

    with pytest.raises(ConfigError, match="teacher"):
        parse_teacher(text)


def test_batchnorm_folds_into_the_same_model(small):
    from mcuflow.nn.foldnorm import FoldableNorms

    train, _ = small
    torch.manual_seed(0)
    model = build_model(paper_config())
    norms = FoldableNorms(model)
    assert [a.layer for a in norms.attached] == [model.head[1], model.tail[0]]  # hidden junctions, not the output
    with torch.no_grad():
        for i in range(0, 1000, 100):  # running statistics away from their initial 0/1
            model(train[0][i : i + 100])
        for a in norms.attached:  # and affine terms away from 1/0
            a.norm.weight.uniform_(0.5, 2.0)
            a.norm.bias.uniform_(-0.5, 0.5)
    model.eval()
    x = train[0][:200]
    with torch.no_grad():
        exits_bn, final_bn = model(x)
        norms.fold()
        exits, final = model(x)
    assert not model.head[1]._forward_hooks and not model.tail[0]._forward_hooks
    torch.testing.assert_close(final, final_bn, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(exits[0], exits_bn[0], rtol=1e-4, atol=1e-4)
    layer = model.head[1]
    assert (layer.dense_weight()[~layer.mask()] == 0).all() and layer.weight.shape == (40, 40)


def test_training_with_batchnorm_returns_a_plain_model(small):
    train, test = small
    res = build_and_train(
        paper_config(), train, test, TrainConfig(epochs=2, lr=2e-2, batchnorm=True), show_progress=False
    )
    model = res.model
    assert res.metrics["params"]["main_path"] == 2450 and res.metrics["training"]["batchnorm"] is True
    assert all(not m._forward_hooks for m in model.modules())
    assert res.metrics["accuracy"]["final"] > 0.6
    assert evaluate(model, *test)["final"] == res.metrics["accuracy"]["final"] == res.history[-1]["test_final"]
