"""`genlab eval`: likelihood and sample metrics of a run, each beside its real-vs-real floor."""

from __future__ import annotations

import json

import pytest

from genlab.core.errors import ConfigError
from genlab.evaluate import evaluate_run
from genlab.train.run import train_run


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gmm"
    train_run(
        "gmm",
        data_name="8gaussians",
        out=out,
        overrides=["model.n_components=8", "data.num_samples=1000"],
    )
    return out


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    train_run(
        "vae",
        data_name="digits",
        out=out,
        overrides=[
            "model.hidden=[32]",
            "model.latent_dim=4",
            "train.steps=30",
            "train.batch_size=32",
            "train.progress=false",
            "train.num_samples=0",
        ],
    )
    return out


def test_points_defaults_with_floors(gmm_run):
    r = evaluate_run(gmm_run, num_samples=400)
    assert r["kind"] == "exact" and r["metrics"] == ["nll", "mmd", "prdc", "c2st", "modes"]
    assert abs(r["log_likelihood_nats"] - r["true_log_likelihood_nats"]) < 0.3
    for key in ("mmd_rbf", "precision", "recall", "density", "coverage", "c2st_accuracy"):
        assert f"{key}_real_floor" in r
    # A well-fitted GMM on its own mixture: all 8 modes, nearly all samples high quality.
    assert r["modes_captured"] == 8 and r["high_quality_share"] > 0.9
    assert r["c2st_accuracy"] < 0.65
    saved = json.loads((gmm_run / "eval" / "metrics.json").read_text())
    assert saved["nll_nats"] == pytest.approx(r["nll_nats"])
    table = (gmm_run / "eval" / "metrics.md").read_text()
    assert "| precision |" in table and "real vs real" in table


def test_image_metrics_with_redraw_intervals(vae_run):
    r = evaluate_run(
        vae_run, metrics=["fid", "kid", "prdc", "memorization"], num_samples=200, redraws=5
    )
    assert r["feature_network"]["extractor"] == "digits8" and r["num_samples"] == 200
    assert r["fid"] > r["fid_real_floor"] >= 0  # 30 steps of training is far from the data
    # The seed's own draw is one of the redraw sets, so it lies within their range.
    assert r["fid_low"] <= r["fid_high"] and r["fid_real_floor_low"] <= r["fid_real_floor_high"]
    assert r["redraws"] == 5 and r["fid_low"] > r["fid_real_floor_high"]
    assert "dcr_median_ratio" in r
    # 30 steps cannot memorise: the likelihood barely tells train rows from held-out ones.
    assert 0.3 < r["membership_auc"] < 0.7


def test_unknown_and_inapplicable_metrics(vae_run):
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate_run(vae_run, metrics=["fidd"])
    with pytest.raises(ConfigError, match="does not apply to image"):
        evaluate_run(vae_run, metrics=["modes"])


def test_cli_eval_prints_the_table(run_cli, gmm_run):
    code, out, err = run_cli("eval", gmm_run, "--metrics", "nll,mmd", "-n", "300")
    assert code == 0, err
    assert "| mmd_rbf |" in out and "| kind | exact |" in out


def test_binarized_data_is_compared_with_grey_level_images(tmp_path):
    # The floor (train vs test real digits) must not mix binarized and grey-level sets.
    out = tmp_path / "bin"
    train_run(
        "vae",
        data_name="digits",
        out=out,
        overrides=[
            "data.binarize=true",
            "model.hidden=[16]",
            "model.latent_dim=2",
            "train.steps=5",
            "train.batch_size=32",
            "train.progress=false",
            "train.num_samples=0",
        ],
    )
    r = evaluate_run(out, metrics=["fid"], num_samples=300)
    plain = tmp_path / "plain"
    train_run(
        "vae",
        data_name="digits",
        out=plain,
        overrides=[
            "model.hidden=[16]",
            "model.latent_dim=2",
            "train.steps=5",
            "train.batch_size=32",
            "train.progress=false",
            "train.num_samples=0",
        ],
    )
    assert r["fid_real_floor"] == pytest.approx(
        evaluate_run(plain, metrics=["fid"], num_samples=300)["fid_real_floor"]
    )
