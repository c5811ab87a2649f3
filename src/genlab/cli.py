"""The `genlab` command line: list, train, sample, eval, demo.

User errors (a wrong path, an unknown option, a corrupt checkpoint) print one line naming the
problem and the fix, and exit with status 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click
import yaml

from genlab.core.errors import ConfigError, GenlabError


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for text in pairs:
        if "=" not in text:
            raise ConfigError(f"-o {text!r}: expected key=value, e.g. -o temperature=0.8")
        key, raw = text.split("=", 1)
        try:
            options[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"-o {text!r}: the value is not valid YAML") from None
    return options


def _call_with_options(fn, *args, options: dict[str, Any], what: str, **kwargs):
    """Call a model method with user options, turning an unknown keyword into a clear error."""
    try:
        return fn(*args, **kwargs, **options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            bad = str(e).split("argument")[-1].strip(" '\"")
            raise ConfigError(
                f"{what} has no option {bad!r}; see the model's documentation "
                f"(python -c 'import genlab; help(genlab.load(RUN).{fn.__name__})')"
            ) from None
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genlab")
def cli() -> None:
    """genlab: train, sample, evaluate and compare generative models."""


@cli.command("list")
def list_cmd() -> None:
    """List the registered models, their presets, and the data sets."""
    from genlab.core.registry import list_models
    from genlab.data import list_sources

    click.echo("models:")
    for name, entry in list_models().items():
        presets = f"  (presets: {', '.join(entry.presets)})" if entry.presets else ""
        click.echo(f"  {name:<16}{entry.summary}{presets}")
    click.echo("data sets:")
    click.echo("  " + ", ".join(list_sources()))


@cli.group()
def data() -> None:
    """Inspect data sets before training."""


@data.command("info")
@click.argument("name_or_path")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Data option, e.g. -o binarize=true.",
)
def data_info(name_or_path, split, options) -> None:
    """Print a data set's spec: modality, shape, classes, columns and types, missing values."""
    from genlab.data import load
    from genlab.data.info import describe

    click.echo(describe(load(name_or_path, split=split, **_parse_options(options))))


@cli.command()
@click.argument("model")
@click.option("--data", "data_name", help="Data set name, e.g. mnist5k, moons.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Run YAML (model:, data:, train:).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a config value, e.g. --set train.lr=3e-4.",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Run folder to create."
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in --out from its newest checkpoint."
)
@click.option("--force", is_flag=True, help="Move an existing --out aside and start again.")
def train(model, data_name, config_path, overrides, out, resume, force) -> None:
    """Train MODEL (a name or preset from `genlab list`) into a run folder."""
    from genlab.train.run import train_run

    _, run_dir, summary = train_run(
        model,
        data_name=data_name,
        out=out,
        config_path=config_path,
        overrides=overrides,
        resume=resume,
        force=force,
    )
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"run folder: {run_dir}")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "-n",
    "num_samples",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Number of samples.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output file: .png (images, 2-D points), .npy, .pt, .csv, .txt (text) or .wav (audio).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--class", "label", type=int, default=None, help="Class label for conditional models."
)
@click.option("--sampler", default=None, help="Diffusion sampler, e.g. dpmpp_2m, ddim, heun.")
@click.option("--steps", type=int, default=None, help="Diffusion sampling steps.")
@click.option(
    "--guidance",
    type=float,
    default=None,
    help="Classifier-free guidance w (Ho & Salimans): D_c + w (D_c - D_u); 0 = none. "
    "diffusers' guidance_scale is w + 1.",
)
@click.option(
    "--inpaint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Image to inpaint (PNG); needs --mask. -o resample=10 adds RePaint's resampling: "
    "fills more consistent with the known pixels, at 10x the evaluations.",
)
@click.option(
    "--mask",
    type=click.Path(dir_okay=False),
    default=None,
    help="Inpainting mask (PNG, same size): white = generate, black = keep.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing --out: the old file (and its .json) is moved aside, not deleted.",
)
@click.option("--prompt", default=None, help="Text prompt for sequence models.")
@click.option("--max-new-tokens", type=int, default=None, help="Tokens to generate after it.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature.")
@click.option("--top-k", type=int, default=None, help="Keep the k most likely tokens.")
@click.option("--top-p", type=float, default=None, help="Nucleus sampling mass, in (0, 1].")
@click.option(
    "--stream/--no-stream",
    default=False,
    help="Print the first text sample to the terminal as it is generated.",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model sampling option, e.g. -o temperature=0.8.",
)
def sample(
    run_dir,
    num_samples,
    out,
    seed,
    label,
    sampler,
    steps,
    guidance,
    inpaint,
    mask,
    force,
    prompt,
    max_new_tokens,
    temperature,
    top_k,
    top_p,
    stream,
    options,
) -> None:
    """Draw samples from a trained run and write them to a file (with a provenance .json)."""
    import torch

    from genlab import __version__
    from genlab.core.persist import atomic_write_text
    from genlab.data.writers import write_samples
    from genlab.train.run import load_run

    model, _, spec = load_run(run_dir)
    inputs = [Path(p) for p in (inpaint, mask) if p is not None]
    replaced = _existing_outputs(Path(out), inputs=inputs, force=force)
    opts = _parse_options(options)
    flags = {
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "prompt": prompt,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
    }
    opts.update({key: value for key, value in flags.items() if value is not None})
    recorded = dict(opts)  # what the provenance file names: JSON-able values only
    if (inpaint is None) != (mask is None):
        raise ConfigError("--inpaint and --mask go together: give both files, or neither")
    if inpaint is not None:
        opts["inpaint"], opts["mask"] = _inpainting_inputs(Path(inpaint), Path(mask), spec)
        recorded.update(inpaint=str(Path(inpaint).resolve()), mask=str(Path(mask).resolve()))
    if stream:
        if spec.modality != "text":
            raise ConfigError(f"--stream prints text, but this run models {spec.modality} data")
        opts["stream"] = _TextStream(spec)
    cond = None
    if label is not None:
        cond = {"label": torch.full((num_samples,), label, dtype=torch.long)}
    generator = torch.Generator().manual_seed(seed)
    x = _call_with_options(
        model.sample,
        num_samples,
        options=opts,
        what=f"{model.name}.sample",
        generator=generator,
        cond=cond,
    )
    if stream:
        click.echo()
    _move_aside(replaced)
    path = write_samples(x, spec, out)
    provenance = {
        "generator": "genlab",
        "genlab_version": __version__,
        "model": model.name,
        "run_dir": str(Path(run_dir).resolve()),
        "num_samples": num_samples,
        "seed": seed,
        "class": label,
        "options": recorded,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(Path(str(path) + ".json"), json.dumps(provenance, indent=2))
    click.echo(f"wrote {num_samples} samples to {path}")


def _existing_outputs(out: Path, *, inputs: list[Path], force: bool) -> list[Path]:
    """Refuse to write samples over an input or, without --force, over an existing file;
    returns the existing files that --force replaces (`_move_aside` them before writing)."""
    for path in inputs:
        if path.exists() and out.exists() and out.resolve() == path.resolve():
            raise ConfigError(
                f"--out {out} is also an input of this command: choose another --out, so that "
                "the input is kept"
            )
    targets = [p for p in (out, Path(str(out) + ".json")) if p.exists()]
    if targets and not force:
        raise ConfigError(
            f"{targets[0]} already exists: choose another --out, or pass --force to move the "
            "old file aside and write the new one"
        )
    return targets


def _move_aside(paths: list[Path]) -> None:
    from genlab.core.persist import move_aside

    for path in paths:
        click.echo(f"moved the existing {path} to {move_aside(path)}")


class _TextStream:
    """A `stream` callback: decodes the first sample's new tokens and prints them at once."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, new_ids) -> None:
        from genlab.data.text import decode

        first = int(new_ids.reshape(-1)[0])
        if first < 0:  # PAD_ID: the first sample has stopped at a stop string
            return
        self.ids.append(first)
        text = decode(self.spec, self.ids)
        # A byte-level token may end inside a UTF-8 character: wait for the rest of it.
        if text.endswith("\ufffd"):
            return
        click.echo(text[len(self.shown) :], nl=False)
        sys.stdout.flush()
        self.shown = text


def _inpainting_inputs(image_path: Path, mask_path: Path, spec):
    """The known image (1, C, H, W) in [0, 1] and the mask (1, 1, H, W), 1 = generate."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    if spec.modality != "image":
        raise ConfigError(f"--inpaint needs an image model, but this run models {spec.modality}")
    channels, height, width = spec.shape
    arrays = []
    for path, mode in ((image_path, "L" if channels == 1 else "RGB"), (mask_path, "L")):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist: give the path of a PNG file")
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert(mode), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as e:
            raise ConfigError(f"{path} is not a readable image ({e}): give a PNG file") from None
        if array.shape[:2] != (height, width):
            raise ConfigError(
                f"{path} is {array.shape[1]}x{array.shape[0]} pixels, but the model makes "
                f"{width}x{height} images: give an image and a mask of that size"
            )
        arrays.append(array)
    grey = int(((arrays[1] > 0) & (arrays[1] < 1)).sum())
    if grey:
        raise ConfigError(
            f"{mask_path} has {grey} grey pixels, but a mask must be pure black (keep) and "
            "white (generate): threshold it, e.g. with PIL's Image.point(lambda v: 255 * (v > "
            "127)), and save it without antialiasing"
        )
    image = torch.from_numpy(arrays[0]).reshape(height, width, -1).permute(2, 0, 1)[None]
    mask = torch.from_numpy(arrays[1])[None, None].contiguous()
    return image.contiguous(), mask


@cli.command("eval")
@click.argument("run_dir", type=click.Path())
@click.option(
    "--metrics",
    default="",
    help="Comma-separated: nll,fid,kid,prdc,mmd,c2st,modes,memorization (default: by modality).",
)
@click.option(
    "-n",
    "num_samples",
    type=click.IntRange(min=2),
    default=1000,
    show_default=True,
    help="Samples drawn and real rows compared.",
)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Score at most this many rows' likelihood.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=250, show_default=True)
@click.option(
    "--redraws",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Extra sample sets for 95% intervals of sample metrics.",
)
@click.option(
    "--features", default=None, help="Feature network: digits28, digits8, inception, raw."
)
@click.option(
    "--features-weights",
    default=None,
    type=click.Path(dir_okay=False),
    help="Weights file for --features inception.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="log_likelihood option, e.g. -o k=100.",
)
def eval_cmd(
    run_dir,
    metrics,
    num_samples,
    split,
    max_rows,
    batch_size,
    redraws,
    features,
    features_weights,
    seed,
    options,
) -> None:
    """Evaluate a run: likelihood with its kind, sample metrics beside the real-vs-real floor."""
    from genlab.evaluate import evaluate_run

    chosen = [m.strip() for m in metrics.split(",") if m.strip()] or None
    evaluate_run(
        run_dir,
        metrics=chosen,
        num_samples=num_samples,
        split=split,
        max_rows=max_rows,
        batch_size=batch_size,
        seed=seed,
        redraws=redraws,
        features=features,
        features_weights=features_weights,
        options=_parse_options(options),
    )
    click.echo((Path(run_dir) / "eval" / "metrics.md").read_text())


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Move an existing --out aside and run again.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override the demo config.",
)
def demo(out, force, overrides) -> None:
    """Train a class-conditional VAE on 4,000 MNIST digits (about 2 minutes on a CPU)."""
    from genlab.evaluate import evaluate_run
    from genlab.train.run import train_run

    start = time.perf_counter()
    with resources.as_file(resources.files("genlab") / "configs" / "demo.yaml") as config_path:
        _, run_dir, summary = train_run(
            None, data_name=None, out=out, config_path=config_path, overrides=overrides, force=force
        )
    result = evaluate_run(run_dir, metrics=("nll", "fid", "prdc"), options={"k": 100})
    click.echo(
        f"trained {summary.get('steps')} steps in {summary['train_seconds']:.1f} s; "
        f"total {time.perf_counter() - start:.1f} s"
    )
    given = " given the class" if result["conditioned_on"] else ""
    click.echo(
        f"test log-likelihood{given} (IWAE k=100, a {result['kind'].replace('_', ' ')}): "
        f"{result['log_likelihood_nats']:.2f} nats"
    )
    click.echo(
        f"FID on genlab's digit features, N={result['num_samples']}: {result['fid']:.2f} "
        f"(real train vs test digits: {result['fid_real_floor']:.2f}); precision "
        f"{result['precision']:.2f}, recall {result['recall']:.2f}"
    )
    for what, rel in [
        ("samples", "samples/final.png"),
        ("loss curve", "plots/loss.png"),
        ("metrics", "metrics.jsonl"),
        ("evaluation", "eval/metrics.md"),
        ("model", "model/"),
    ]:
        click.echo(f"{what:<12}{Path(run_dir) / rel}")


def main() -> None:
    """Entry point: runs the CLI, printing user errors without a traceback."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except GenlabError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; resume with --resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
