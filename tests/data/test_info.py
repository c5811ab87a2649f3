"""describe(): a readable summary for every modality."""

from __future__ import annotations

import numpy as np
import torch

from genlab.core.contract import DataSpec
from genlab.data import load
from genlab.data.dataset import Dataset
from genlab.data.info import describe


def test_describe_mnist5k():
    text = describe(load("mnist5k", "train"))
    lines = text.splitlines()
    assert lines[0] == "mnist5k: 4,000 rows of image data, each float32 (1, 28, 28) (784 values)"
    assert "declared range [0, 1]" in text and "observed [0, 1]" in text
    assert "256 discrete levels" in text
    assert "classes: 10" in text
    assert sum(line.split() == [str(d), "400"] for line in lines for d in range(10)) == 10
    binarized = describe(load("mnist5k", "train", binarize=True))
    assert "2 discrete levels" in binarized and "Bernoulli" in binarized


def test_describe_moons_and_a_known_density():
    text = describe(load("moons", "train"))
    assert text.startswith("moons: 5,000 rows of points data, each float32 (2,)")
    assert "per dimension:" in text and "x0" in text and "x1" in text
    assert "classes" not in text
    gaussians = describe(load("8gaussians", "test"))
    assert "true log density: known" in gaussians
    assert "modes: tensor float64 (8, 2)" in gaussians and "std: 0.02" in gaussians


def test_describe_text_with_vocabulary_and_tokenizer():
    vocab = tuple("abcdefghijklmnop")
    spec = DataSpec(
        modality="text",
        shape=(8,),
        name="tiny-text",
        vocab=vocab,
        tokenizer={"kind": "char", "vocab_size": len(vocab)},
    )
    data = Dataset(x=torch.randint(0, 16, (3, 8)), spec=spec)
    text = describe(data)
    assert "3 rows of text data, each int64 (8,)" in text
    assert "vocabulary: 16 tokens ('a', 'b'" in text and ", ...)" in text
    assert "tokenizer: char, 16 tokens" in text
    assert "observed" in text and "per dimension" not in text


def test_describe_table_with_columns_missing_values_and_report():
    columns = (
        {"name": "age", "kind": "numerical"},
        {"name": "colour", "kind": "categorical", "categories": ["red", "green", "blue"]},
    )
    x = torch.tensor([[30.0, 0.0], [float("nan"), 1.0], [50.0, 2.0]])
    spec = DataSpec(modality="tabular", shape=(2,), name="people", columns=columns)
    report = {"rows": 3, "missing": {"age": 1, "colour": 0}, "notes": ["age imputed"]}
    text = describe(Dataset(x=x, spec=spec, info={"report": report}))
    assert "1 missing (NaN) values" in text
    assert "age     [30, 50]  mean 40  std 14.14  missing 1" in text
    assert "columns (2):" in text and "age: kind=numerical" in text
    assert "colour: kind=categorical, categories=red, green, blue" in text
    assert "report:" in text and "missing:" in text and "age: 1" in text


def test_describe_labels_with_names_and_without_rows():
    spec = DataSpec(modality="image", shape=(1, 2, 2), name="pets", num_classes=2)
    data = Dataset(
        x=torch.zeros(3, 1, 2, 2),
        spec=spec,
        labels=torch.tensor([0, 1, 1]),
        info={"class_names": ["cats", "dogs"], "files": [f"{i}.png" for i in range(12)]},
    )
    text = describe(data)
    assert "0 cats  1" in text and "1 dogs  2" in text
    assert "files: 12 items: 0.png, 1.png, 2.png, ..." in text
    empty = Dataset(x=torch.zeros(0, 3), spec=DataSpec(modality="sequence", shape=(3,)))
    assert describe(empty).startswith("(unnamed data set): 0 rows of sequence data")
    unlabelled = Dataset(x=torch.from_numpy(np.ones((2, 1), np.float32)), spec=spec_classes())
    assert "classes: 4 (no labels)" in describe(unlabelled)


def spec_classes() -> DataSpec:
    return DataSpec(modality="points", shape=(1,), num_classes=4)
