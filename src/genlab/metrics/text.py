"""Text metrics: BLEU, chrF, ROUGE, distinct-n and self-BLEU.

BLEU and chrF are thin wrappers over sacrebleu (Post, 2018, "A Call for Clarity in Reporting
BLEU Scores") at corpus level with its default, signature-stable settings, so figures compare
with published ones; both are on sacrebleu's 0–100 scale. ROUGE wraps Google's `rouge_score`
(Lin, 2004) and is on its 0–1 scale. distinct-n (Li et al., 2016) and self-BLEU (Zhu et al.,
2018, Texygen) measure the diversity of generated text and need no references.

References are given per hypothesis: `references[i]` is the reference string of
`hypotheses[i]`, or a list of its reference strings (several references, possibly a different
number per hypothesis). Note that this is the transpose of sacrebleu's "reference streams".
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.helpers import extract_all_word_ngrams

from genlab.core.errors import ConfigError, DataError

Unit = Literal["word", "char"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _reference_lists(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]] | Sequence[str]
) -> list[list[str]]:
    """Check the inputs and return one list of references per hypothesis."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise DataError(
            "hypotheses and references must be lists of strings, not a single string: "
            "wrap one sentence as [sentence]"
        )
    if len(hypotheses) == 0:
        raise DataError("no hypotheses to score: pass at least one generated text")
    if len(hypotheses) != len(references):
        raise DataError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: give one "
            "reference (or one list of references) per hypothesis"
        )
    per_hypothesis = []
    for i, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs or not all(isinstance(r, str) for r in refs):
            raise DataError(
                f"references[{i}] must be a string or a non-empty list of strings, got {refs!r}"
            )
        per_hypothesis.append(refs)
    for i, h in enumerate(hypotheses):
        if not isinstance(h, str):
            raise DataError(f"hypotheses[{i}] is {type(h).__name__}, not a string: decode it first")
    return per_hypothesis


def _reference_streams(per_hypothesis: list[list[str]]) -> list[list[str | None]]:
    """Transpose per-hypothesis references into sacrebleu's streams, padding with None."""
    num_streams = max(len(refs) for refs in per_hypothesis)
    return [
        [refs[k] if k < len(refs) else None for refs in per_hypothesis] for k in range(num_streams)
    ]


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]] | Sequence[str]) -> float:
    """Corpus BLEU (Papineni et al., 2002) on sacrebleu's 0–100 scale.

    sacrebleu defaults: 13a tokenization, case-sensitive, n-grams up to 4, uniform weights,
    clipped n-gram counts summed over the corpus, brevity penalty exp(1 − r/c) with r the sum
    of the reference lengths closest to each hypothesis length.

    Args:
        hypotheses: N generated strings.
        references: N reference strings, or N lists of reference strings (see module docstring).

    Returns:
        BLEU in [0, 100].
    """
    per_hypothesis = _reference_lists(hypotheses, references)
    score = BLEU().corpus_score(list(hypotheses), _reference_streams(per_hypothesis))
    return float(score.score)


def chrf(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]] | Sequence[str],
    *,
    word_order: int = 0,
) -> float:
    """Corpus chrF (Popović, 2015) on sacrebleu's 0–100 scale.

    sacrebleu defaults: character n-grams up to 6, β = 2, whitespace ignored. `word_order=2`
    gives chrF++ (Popović, 2017), which adds word uni- and bigrams.

    Args:
        hypotheses: N generated strings.
        references: N reference strings, or N lists of reference strings.
        word_order: word n-gram order, 0 for chrF, 2 for chrF++.

    Returns:
        chrF in [0, 100].
    """
    if word_order < 0:
        raise ConfigError(f"word_order must be >= 0 (0 = chrF, 2 = chrF++), got {word_order}")
    per_hypothesis = _reference_lists(hypotheses, references)
    score = CHRF(word_order=word_order).corpus_score(
        list(hypotheses), _reference_streams(per_hypothesis)
    )
    return float(score.score)


def rouge(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]] | Sequence[str],
    types: Sequence[str] = ("rouge1", "rouge2", "rougeL"),
    *,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """ROUGE F-measures (Lin, 2004) averaged over hypotheses, on a 0–1 scale.

    Uses Google's `rouge_score` re-implementation of ROUGE-1.5.5: lower-cased, non-alphanumeric
    characters dropped, and Porter stemming on by default (ROUGE-1.5.5's `-m`, as in most
    summarization papers). With several references a hypothesis takes its best F-measure over
    them (`score_multi`).

    Args:
        hypotheses: N generated strings.
        references: N reference strings, or N lists of reference strings.
        types: ROUGE variants among rouge1, rouge2, rougeL, rougeLsum (rougeN for any N works).
        use_stemmer: Porter-stem words before matching.

    Returns:
        {type: mean F-measure in [0, 1]} for each requested type.
    """
    from rouge_score import rouge_scorer

    types = list(types)
    for t in types:
        if t not in ROUGE_TYPES and not (t.startswith("rouge") and t[5:].isdigit()):
            raise ConfigError(f"unknown ROUGE type {t!r}: choose from {', '.join(ROUGE_TYPES)}")
    if not types:
        raise ConfigError(f"no ROUGE types requested: choose from {', '.join(ROUGE_TYPES)}")
    per_hypothesis = _reference_lists(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer)
    totals = dict.fromkeys(types, 0.0)
    for hypothesis, refs in zip(hypotheses, per_hypothesis):
        scores = scorer.score_multi(refs, hypothesis)
        for t in types:
            totals[t] += scores[t].fmeasure
    return {t: totals[t] / len(hypotheses) for t in types}


def _tokens(text: str, unit: Unit) -> list[str]:
    if unit == "word":
        return text.split()
    if unit == "char":
        return list(text)
    raise ConfigError(f"unknown unit {unit!r}: choose 'word' (whitespace split) or 'char'")


def distinct_n(texts: Sequence[str], n: int, *, unit: Unit = "word") -> float:
    """distinct-n (Li et al., 2016): unique n-grams / total n-grams over the whole corpus.

    Args:
        texts: generated strings; n-grams never cross from one text into the next.
        n: n-gram order (>= 1).
        unit: "word" (whitespace split) or "char" (every character, spaces included).

    Returns:
        A share in (0, 1]; 1 means no n-gram repeats anywhere in the corpus.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if isinstance(texts, str):
        raise DataError("texts must be a list of strings, not one string: wrap it as [text]")
    unique: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = _tokens(text, unit)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        unique.update(grams)
        total += len(grams)
    if total == 0:
        raise DataError(
            f"no text has {n} or more {unit}s, so distinct-{n} is undefined: "
            "pass longer texts or a smaller n"
        )
    return len(unique) / total


def self_bleu(texts: Sequence[str], *, max_texts: int = 1000, seed: int = 0) -> float:
    """Self-BLEU (Zhu et al., 2018, Texygen): mean BLEU of each text against all the others.

    Each text is the hypothesis and every other text a reference; the per-text score is
    sacrebleu's sentence BLEU (13a tokenization, n-grams up to 4, effective order, "exp"
    smoothing), and self-BLEU is their mean, on a 0–100 scale. Higher means less diverse:
    identical texts give 100, texts with no word in common give 0. The statistics come from
    one shared n-gram index (for each n-gram, its two largest counts over the texts), so the
    cost is linear in the corpus size rather than quadratic, with results equal to calling
    sacrebleu's `sentence_score(text, other_texts)` for every text.

    Self-BLEU grows with the number of texts (more references, more matches), so compare
    figures only at equal corpus sizes. When there are more than `max_texts` texts, a random
    subset of `max_texts` (drawn with `seed`) is scored against itself.

    Args:
        texts: generated strings (at least two).
        max_texts: largest number of texts scored; more are subsampled.
        seed: seed of the subsample.

    Returns:
        Self-BLEU in [0, 100].
    """
    if isinstance(texts, str):
        raise DataError("texts must be a list of strings, not one string")
    if max_texts < 2:
        raise ConfigError(f"max_texts must be >= 2, got {max_texts}")
    texts = list(texts)
    if len(texts) < 2:
        raise DataError(
            f"self-BLEU needs at least two texts (each is scored against the others), "
            f"got {len(texts)}"
        )
    if len(texts) > max_texts:
        texts = random.Random(seed).sample(texts, max_texts)

    metric = BLEU(effective_order=True)
    order = metric.max_ngram_order
    counts: list[Counter] = []
    lengths: list[int] = []
    for text in texts:
        grams, length = extract_all_word_ngrams(metric.tokenizer(text.rstrip()), 1, order)
        counts.append(grams)
        lengths.append(length)

    # For each n-gram: its largest count, the text holding it, and the second-largest count, so
    # the max over "all texts but i" is a lookup.
    best: dict[tuple[str, ...], list[int]] = {}
    for i, grams in enumerate(counts):
        for gram, c in grams.items():
            entry = best.get(gram)
            if entry is None:
                best[gram] = [c, i, 0]
            elif c > entry[0]:
                best[gram] = [c, i, entry[0]]
            elif c > entry[2]:
                entry[2] = c

    length_counts = Counter(lengths)
    sorted_lengths = sorted(length_counts)
    total_score = 0.0
    for i, grams in enumerate(counts):
        correct = [0] * order
        total = [0] * order
        for gram, c in grams.items():
            top, holder, second = best[gram]
            ref_count = second if holder == i else top
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, ref_count)
        ref_len = _closest_other_length(lengths[i], sorted_lengths, length_counts)
        score = BLEU.compute_bleu(
            correct,
            total,
            lengths[i],
            ref_len,
            smooth_method=metric.smooth_method,
            smooth_value=metric.smooth_value,
            effective_order=True,
            max_ngram_order=order,
        )
        total_score += score.score
    return total_score / len(texts)


def _closest_other_length(length: int, sorted_lengths: list[int], counts: Counter) -> int:
    """The reference length sacrebleu would pick among all texts but this one.

    sacrebleu takes the length closest to the hypothesis length, the shorter one on a tie.
    """
    if counts[length] > 1:
        return length
    k = bisect.bisect_left(sorted_lengths, length)  # sorted_lengths[k] == length
    shorter = sorted_lengths[k - 1] if k > 0 else None
    longer = sorted_lengths[k + 1] if k + 1 < len(sorted_lengths) else None
    if shorter is None:
        return longer  # type: ignore[return-value]  # at least two texts, so one side exists
    if longer is None or length - shorter <= longer - length:
        return shorter
    return longer
