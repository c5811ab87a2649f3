"""The command line end to end on small data, and every user error it must explain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_VAE = [
    "--set",
    "model.hidden=[16]",
    "--set",
    "model.latent_dim=2",
    "--set",
    "train.steps=6",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.progress=false",
    "--set",
    "train.checkpoint_every=2",
    "--set",
    "data.num_samples=200",
]


@pytest.fixture
def gmm_run(run_cli, tmp_path) -> Path:
    out = tmp_path / "gmm"
    code, _, err = run_cli(
        "train",
        "gmm",
        "--data",
        "8gaussians",
        "--set",
        "model.n_components=8",
        "--set",
        "data.num_samples=800",
        "--out",
        out,
    )
    assert code == 0, err
    return out


def test_list_shows_models_and_data(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0 and "gmm" in out and "vae" in out and "mnist5k" in out


@pytest.mark.parametrize("cmd", [[], ["train"], ["sample"], ["eval"], ["demo"], ["list"]])
def test_every_command_has_help(run_cli, cmd):
    code, out, _ = run_cli(*cmd, "--help")
    assert code == 0 and "Usage" in out


def test_train_writes_the_run_folder(gmm_run):
    for rel in [
        "config.yaml",
        "data_spec.json",
        "model/model.json",
        "model/weights.safetensors",
        "samples/final.png",
    ]:
        assert (gmm_run / rel).exists(), rel


def test_sample_png_npy_with_provenance(run_cli, gmm_run, tmp_path):
    code, _, err = run_cli(
        "sample", gmm_run, "-n", "50", "--out", tmp_path / "s.npy", "--seed", "3"
    )
    assert code == 0, err
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (50, 2)
    prov = json.loads((tmp_path / "s.npy.json").read_text())
    assert prov["model"] == "gmm" and prov["seed"] == 3
    run_cli("sample", gmm_run, "-n", "50", "--out", tmp_path / "t.npy", "--seed", "3")
    assert np.array_equal(a, np.load(tmp_path / "t.npy"))
    code, _, _ = run_cli("sample", gmm_run, "-n", "20", "--out", tmp_path / "s.png")
    assert code == 0 and Image.open(tmp_path / "s.png").size[0] > 0


def test_eval_reports_kind_beside_the_truth(run_cli, gmm_run):
    code, out, err = run_cli("eval", gmm_run)
    assert code == 0, err
    result = json.loads((gmm_run / "eval" / "metrics.json").read_text())
    assert result["kind"] == "exact" and result["num_rows"] == 800
    assert abs(result["log_likelihood_nats"] - result["true_log_likelihood_nats"]) < 0.5


def test_vae_train_sample_eval_with_options(run_cli, tmp_path):
    out = tmp_path / "vae"
    code, _, err = run_cli("train", "vae", "--data", "moons", "--out", out, *TINY_VAE)
    assert code == 0, err
    code, _, err = run_cli(
        "sample", out, "-n", "8", "--out", tmp_path / "v.npy", "-o", "decode=sample"
    )
    assert code == 0, err
    code, _, err = run_cli("eval", out, "-o", "k=5")
    assert code == 0, err
    assert json.loads((out / "eval" / "metrics.json").read_text())["kind"] == "lower_bound"


def _error(run_cli, *args) -> str:
    code, _, err = run_cli(*args)
    assert code == 2, f"expected a user error, got exit {code}: {err}"
    assert "Traceback" not in err
    return err


def test_unknown_model_data_option_and_key(run_cli, tmp_path, gmm_run):
    assert "unknown model 'nope'" in _error(
        run_cli, "train", "nope", "--data", "moons", "--out", tmp_path / "a"
    )
    assert "unknown data set" in _error(
        run_cli, "train", "gmm", "--data", "nope", "--out", tmp_path / "b"
    )
    assert "allowed" in _error(
        run_cli,
        "train",
        "gmm",
        "--data",
        "moons",
        "--set",
        "data.colour=1",
        "--out",
        tmp_path / "c",
    )
    assert "unknown key" in _error(
        run_cli,
        "train",
        "gmm",
        "--data",
        "moons",
        "--set",
        "model.n_comp=3",
        "--out",
        tmp_path / "d",
    )
    assert "unknown key" in _error(
        run_cli,
        "train",
        "gmm",
        "--data",
        "moons",
        "--set",
        "train.learning_rate=3",
        "--out",
        tmp_path / "e",
    )
    assert "no option" in _error(
        run_cli, "sample", gmm_run, "--out", tmp_path / "x.npy", "-o", "temprature=2"
    )
    assert "not one of" in _error(
        run_cli,
        "train",
        "gmm",
        "--data",
        "moons",
        "--set",
        "model.covariance_type=round",
        "--out",
        tmp_path / "f",
    )


def test_config_file_errors(run_cli, tmp_path):
    assert "does not exist" in _error(
        run_cli,
        "train",
        "gmm",
        "--data",
        "moons",
        "--config",
        tmp_path / "no.yaml",
        "--out",
        tmp_path / "a",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {n_components: 3}\noptimizer: {lr: 1}\n")
    assert "unknown section" in _error(
        run_cli, "train", "gmm", "--data", "moons", "--config", bad, "--out", tmp_path / "b"
    )
    bad.write_text("model: [unclosed\n")
    assert "not valid YAML" in _error(
        run_cli, "train", "gmm", "--data", "moons", "--config", bad, "--out", tmp_path / "c"
    )
    bad.write_bytes(b"\xff\xfe\x00binary")
    assert "config file" in _error(
        run_cli, "train", "gmm", "--data", "moons", "--config", bad, "--out", tmp_path / "d"
    )


def test_existing_run_folder_is_not_overwritten(run_cli, gmm_run):
    before = (gmm_run / "model" / "weights.safetensors").read_bytes()
    err = _error(run_cli, "train", "gmm", "--data", "moons", "--out", gmm_run)
    assert "already exists" in err and "--resume" in err and "--force" in err
    assert (gmm_run / "model" / "weights.safetensors").read_bytes() == before
    code, out, _ = run_cli("train", "gmm", "--data", "moons", "--out", gmm_run, "--force")
    assert code == 0 and "moved the existing" in out
    backups = list(gmm_run.parent.glob("gmm.replaced-*"))
    assert (
        len(backups) == 1 and (backups[0] / "model" / "weights.safetensors").read_bytes() == before
    )


def test_corrupt_foreign_and_newer_checkpoints(run_cli, gmm_run, tmp_path):
    weights = gmm_run / "model" / "weights.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(b"not a safetensors file at all")
    assert "corrupt" in _error(run_cli, "sample", gmm_run, "--out", tmp_path / "x.npy")
    weights.write_bytes(good)

    meta_path = gmm_run / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    assert "newer genlab" in _error(run_cli, "sample", gmm_run, "--out", tmp_path / "x.npy")
    meta_path.write_text(json.dumps({**meta, "model": "vae"}))
    assert "does not fit" in _error(run_cli, "sample", gmm_run, "--out", tmp_path / "x.npy")
    meta_path.write_text("{ truncated")
    assert "corrupt" in _error(run_cli, "sample", gmm_run, "--out", tmp_path / "x.npy")
    assert "does not exist" in _error(
        run_cli, "sample", tmp_path / "nowhere", "--out", tmp_path / "x.npy"
    )


def test_resume_with_another_models_checkpoint(run_cli, tmp_path):
    out = tmp_path / "vae"
    code, _, err = run_cli("train", "vae", "--data", "moons", "--out", out, *TINY_VAE)
    assert code == 0, err
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    meta = json.loads((latest / "meta.json").read_text())
    (latest / "meta.json").write_text(json.dumps({**meta, "model": "gmm"}))
    err = _error(run_cli, "train", "vae", "--out", out, "--resume", "--set", "train.steps=8")
    assert "checkpoint of a 'gmm' model" in err


def test_nan_stops_with_the_step_and_keeps_the_checkpoint(run_cli, tmp_path):
    out = tmp_path / "nan"
    err = _error(
        run_cli,
        "train",
        "vae",
        "--data",
        "moons",
        "--out",
        out,
        *TINY_VAE,
        "--set",
        "train.lr=1e30",
        "--set",
        "train.steps=50",
        "--set",
        "train.checkpoint_every=1",
        "--set",
        "train.grad_clip=0",
    )
    assert "diverged" in err and "at step" in err and "last good checkpoint" in err
    from genlab.train.checkpoint import latest_checkpoint, load_checkpoint

    kept = latest_checkpoint(out / "checkpoints")
    ckpt = load_checkpoint(kept, model_name="vae")
    import torch

    assert all(torch.isfinite(v).all() for v in ckpt["weights"].values())


def test_sample_flag_errors_name_the_fix(run_cli, gmm_run, tmp_path):
    out = tmp_path / "x.npy"
    assert "go together" in _error(
        run_cli, "sample", gmm_run, "--out", out, "--inpaint", tmp_path / "a.png"
    )
    assert "prints text" in _error(run_cli, "sample", gmm_run, "--out", out, "--stream")
    assert "needs an image model" in _error(
        run_cli,
        "sample",
        gmm_run,
        "--out",
        out,
        "--inpaint",
        tmp_path / "a.png",
        "--mask",
        tmp_path / "m.png",
    )
    # A flag the model has no option for is an error, like an unknown -o option.
    assert "unknown option steps" in _error(
        run_cli, "sample", gmm_run, "--out", out, "--steps", "5"
    )
    assert ".txt holds decoded text" in _error(
        run_cli, "sample", gmm_run, "--out", tmp_path / "x.txt"
    )


def test_inpainting_inputs_checks_sizes(tmp_path):
    import numpy as np
    from PIL import Image

    from genlab.cli import _inpainting_inputs
    from genlab.core.contract import DataSpec
    from genlab.core.errors import ConfigError

    spec = DataSpec("image", (1, 8, 8), value_range=(0.0, 1.0))
    image = np.zeros((8, 8), np.uint8)
    image[:, 4:] = 255
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    Image.fromarray(image).save(tmp_path / "img.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    x, m = _inpainting_inputs(tmp_path / "img.png", tmp_path / "mask.png", spec)
    assert x.shape == (1, 1, 8, 8) and m.shape == (1, 1, 8, 8)
    assert x[0, 0, 0, 5] == 1 and x[0, 0, 0, 0] == 0
    assert m[0, 0, :4].eq(1).all() and m[0, 0, 4:].eq(0).all()
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ConfigError, match="6 pixels, but the model makes 8x8"):
        _inpainting_inputs(tmp_path / "img.png", tmp_path / "small.png", spec)
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(ConfigError, match="not a readable image"):
        _inpainting_inputs(tmp_path / "bad.png", tmp_path / "mask.png", spec)


def test_inpainting_inputs_refuse_a_missing_file_and_a_grey_mask(tmp_path):
    import numpy as np
    from PIL import Image

    from genlab.cli import _inpainting_inputs
    from genlab.core.contract import DataSpec
    from genlab.core.errors import ConfigError

    spec = DataSpec("image", (1, 8, 8), value_range=(0.0, 1.0))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "img.png")
    with pytest.raises(ConfigError, match="nowhere.png does not exist"):
        _inpainting_inputs(tmp_path / "img.png", tmp_path / "nowhere.png", spec)
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    mask[4, :3] = 128  # an antialiased edge
    Image.fromarray(mask).save(tmp_path / "grey.png")
    with pytest.raises(ConfigError, match="3 grey pixels.*threshold it"):
        _inpainting_inputs(tmp_path / "img.png", tmp_path / "grey.png", spec)


def test_diffusion_train_sample_guide_and_inpaint_through_the_cli(run_cli, tmp_path):
    import numpy as np
    from PIL import Image

    run = tmp_path / "ddpm"
    code, _, err = run_cli(
        "train",
        "diffusion",
        "--data",
        "digits",
        "--out",
        run,
        *("--set", "model.conditional=true", "--set", "model.channels=8"),
        *("--set", "model.channel_mults=[1, 2]", "--set", "model.num_res_blocks=1"),
        *("--set", "model.num_heads=2", "--set", "train.steps=3", "--set", "train.batch_size=16"),
    )
    assert code == 0, err
    out = tmp_path / "sevens.npy"
    guided = ("--sampler", "dpmpp_2m", "--steps", "3", "--guidance", "3", "--class", "7")
    code, _, err = run_cli("sample", run, "-n", "4", "--out", out, *guided)
    assert code == 0, err
    first = np.load(out)
    assert first.shape == (4, 1, 8, 8) and np.isfinite(first).all()
    recorded = json.loads((tmp_path / "sevens.npy.json").read_text())
    assert recorded["class"] == 7
    assert recorded["options"] == {"sampler": "dpmpp_2m", "steps": 3, "guidance": 3.0}
    # An existing output is kept: refused without --force, moved aside with it.
    assert "already exists" in _error(run_cli, "sample", run, "-n", "4", "--out", out, *guided)
    assert np.array_equal(np.load(out), first)
    code, _, err = run_cli(
        "sample", run, "-n", "4", "--out", out, *guided, "--seed", "5", "--force"
    )
    assert code == 0, err
    moved = sorted(tmp_path.glob("sevens.replaced-*"))
    assert [p.name.split(".", 2)[-1] for p in moved] == ["npy", "npy.json"]
    assert np.array_equal(np.load(moved[0]), first)
    assert not np.array_equal(np.load(out), first)
    # Inpainting: the black half of the mask is kept exactly, the white half generated.
    image = np.zeros((8, 8), np.uint8)
    image[:, 2:6] = 255
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    Image.fromarray(image).save(tmp_path / "digit.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    inputs = ("--inpaint", tmp_path / "digit.png", "--mask", tmp_path / "mask.png")
    filled = tmp_path / "filled.npy"
    code, _, err = run_cli("sample", run, "-n", "2", "--steps", "3", "--out", filled, *inputs)
    assert code == 0, err
    x = np.load(filled)
    np.testing.assert_allclose(
        x[:, 0, 4:], np.broadcast_to(image[4:] / 255.0, (2, 4, 8)), atol=1e-5
    )
    # The input image is never the output, not even with --force.
    err = _error(run_cli, "sample", run, "--out", tmp_path / "digit.png", *inputs, "--force")
    assert "also an input" in err and (tmp_path / "digit.png").exists()


def test_gpt_train_and_sample_text_with_prompt_and_stream(run_cli, tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log. " * 40)
    out = tmp_path / "gpt"
    code, _, err = run_cli(
        "train",
        "gpt",
        "--data",
        text,
        "--set",
        "data.block_size=16",
        "--set",
        "model.num_layers=1",
        "--set",
        "model.dim=16",
        "--set",
        "model.num_heads=2",
        "--set",
        "train.steps=5",
        "--set",
        "train.batch_size=8",
        "--set",
        "train.num_samples=2",
        "--out",
        out,
    )
    assert code == 0, err
    assert (out / "samples" / "final.txt").exists()
    code, printed, err = run_cli(
        "sample",
        out,
        "-n",
        "2",
        "--prompt",
        "the c",
        "--max-new-tokens",
        "8",
        "--top-k",
        "3",
        "--stream",
        "--out",
        tmp_path / "s.txt",
    )
    assert code == 0, err
    written = (tmp_path / "s.txt").read_text()
    assert written.startswith("the c") and written.count("the c") == 2
    first = written.split("\n\n----------\n\n")[0]
    assert first[len("the c") :] in printed  # the first sample was streamed as it grew
    assert "unknown" not in err
    message = _error(run_cli, "sample", out, "--prompt", "Z!", "--out", tmp_path / "z.txt")
    assert "'Z'" in message and "byte" in message  # names the character and the fix


def test_wavenet_train_and_sample_audio_as_wav(run_cli, tmp_path):
    from scipy.io import wavfile

    from genlab.data.audio import read_wav
    from genlab.data.writers import WAV_GAP_SECONDS

    t = np.arange(4000) / 8000.0
    wavfile.write(
        tmp_path / "tone.wav", 8000, np.round(16000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    )
    out = tmp_path / "wave"
    settings = ["model.residual_channels=4", "model.dilation_channels=4", "model.skip_channels=4"]
    settings += ["model.layers_per_stack=2", "model.num_stacks=1", "data.window=32"]
    settings += ["train.steps=2", "train.batch_size=4", "train.num_samples=2"]
    args = [arg for setting in settings for arg in ("--set", setting)]
    code, _, err = run_cli("train", "wavenet", "--data", tmp_path / "tone.wav", *args, "--out", out)
    assert code == 0, err
    assert (out / "samples" / "final.wav").exists()  # audio previews are heard, not plotted
    code, _, err = run_cli("sample", out, "-n", "3", "--seed", "1", "--out", tmp_path / "s.wav")
    assert code == 0, err
    audio, rate, clipped = read_wav(tmp_path / "s.wav")
    gap = round(WAV_GAP_SECONDS * 8000)
    assert rate == 8000 and clipped == 0 and audio.shape == (3 * 32 + 2 * gap,)
    assert np.all(audio[32 : 32 + gap] == 0)  # silence between the clips
    message = _error(run_cli, "sample", out, "-n", "2", "--out", tmp_path / "s.wav.txt")
    assert ".txt holds decoded text" in message
