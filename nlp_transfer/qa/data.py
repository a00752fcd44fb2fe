"""SQuAD-format loading and checks, the by-article split and subsampling.

Every split becomes the same five columns (the flat Hugging Face ``squad`` form)::

    id (str), title (str), context (str), question (str), answers {text: [str], answer_start: [int]}

from a nested SQuAD json file (``{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``, optionally ``.json.gz``), flat
json/jsonl/csv/parquet rows (column names configurable; answers as ``{text: [...], answer_start: [...]}``, a list of
``{text, answer_start}`` or, in csv, either one as a JSON string), or a Hub dataset (``squad``, ``squad_v2``).

What bad input does (decided per case; the recipe's docstring repeats it; long contexts and questions: see
`nlp_transfer.qa.features`):

- no context, an empty question, a duplicate id, malformed json: `NLPTransferError` naming the first offender.
  Nothing sensible can be learnt or scored from such a row, and a silent drop would hide a broken export.
- no answer (or only empty answer texts) in a SQuAD v1 dataset: `NLPTransferError` pointing at
  ``--version_2_with_negative``: in v1 every question has an answer, so this is v2 data or a broken file.
- an ``answer_start`` that does not point at the answer text: repaired when the text occurs within
  `REPAIR_DISTANCE` characters of it (the nearest occurrence; off-by-one, 1-based or byte offsets), otherwise the
  answer is not used for training (a question left with no usable answer is dropped from train); validation and
  test keep its text as a gold answer, since EM/F1 only read the text. One warning per split with the counts.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random

import datasets
from datasets import Dataset, DatasetDict, Features, Value

from ..data import check_file, file_format, load_hub_dataset, short_error
from ..errors import NLPTransferError

logger = logging.getLogger(__name__)

REPAIR_DISTANCE = 100  # characters: how far from a wrong answer_start the answer text may be found and trusted
FEATURES = Features(
    {
        "id": Value("string"),
        "title": Value("string"),
        "context": Value("string"),
        "question": Value("string"),
        "answers": {"text": datasets.List(Value("string")), "answer_start": datasets.List(Value("int64"))},
    }
)


# --------------------------------------------------------------------------------------------------- loading
def _read_squad_json(path: str, what: str) -> list[dict] | None:
    """Rows of a nested SQuAD json file, or None when the file holds flat rows (a JSON list, or JSON Lines)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several top-level values: JSON Lines under a .json name
            return None
        raise NLPTransferError(
            f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): fix the file"
        ) from None
    if isinstance(obj, list):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise NLPTransferError(
            f"{what} {path} is a JSON {type(obj).__name__} without a 'data' list: SQuAD json is "
            '{"version": ..., "data": [articles]}; flat rows go in a JSON list or JSON Lines'
        )
    rows = []
    for a, article in enumerate(obj["data"]):
        where = f"{what} {path}: article {a}"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise NLPTransferError(f"{where} has no 'paragraphs' list: each article is {{title, paragraphs}}")
        title = str(article.get("title") or f"article-{a}")
        for p, para in enumerate(article["paragraphs"]):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise NLPTransferError(f"{where} ({title}) paragraph {p} has no 'qas' list: each is {{context, qas}}")
            context = para.get("context")
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict):
                    raise NLPTransferError(f"{where} ({title}) paragraph {p} question {q} is not an object")
                answers = qa.get("answers") or []
                if not isinstance(answers, list) or not all(
                    isinstance(x, dict) and "text" in x and "answer_start" in x for x in answers
                ):
                    raise NLPTransferError(
                        f"{where} ({title}) question {qa.get('id', q)!r}: 'answers' must be a list of "
                        "{text, answer_start}"
                    )
                if qa.get("is_impossible"):
                    answers = []
                try:
                    starts = [int(x["answer_start"]) for x in answers]
                except (TypeError, ValueError):
                    raise NLPTransferError(
                        f"{where} ({title}) question {qa.get('id', q)!r}: answer_start must be an integer"
                    ) from None
                rows.append(
                    {
                        "id": str(qa.get("id", f"{title}/{p}/{q}")),
                        "title": title,
                        "context": context if isinstance(context, str) else "",
                        "question": qa.get("question") if isinstance(qa.get("question"), str) else "",
                        "answers": {"text": [str(x["text"]) for x in answers], "answer_start": starts},
                    }
                )
    if not rows:
        raise NLPTransferError(f"{what} {path} holds no questions")
    return rows


def _parse_answers(value, split: str, row: int, column: str) -> dict:
    if value is None:
        return {"text": [], "answer_start": []}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except json.JSONDecodeError:
            value = ...
        if value is ...:
            raise NLPTransferError(
                f"column '{column}' of row {row} in the {split} split is text but not JSON: store answers as "
                '{"text": [...], "answer_start": [...]} (a JSON string in csv)'
            )
        return _parse_answers(value, split, row, column)
    if isinstance(value, dict) and "text" in value and "answer_start" in value:
        texts, starts = value["text"], value["answer_start"]
        if not isinstance(texts, (list, tuple)):
            texts, starts = [texts], [starts]
    elif isinstance(value, (list, tuple)) and all(isinstance(x, dict) and "text" in x for x in value):
        texts = [x["text"] for x in value]
        starts = [x.get("answer_start") for x in value]
    else:
        raise NLPTransferError(
            f"column '{column}' of row {row} in the {split} split is not answers: use "
            "{text: [...], answer_start: [...]} or a list of {text, answer_start} (see --answer_column)"
        )
    if len(texts) != len(starts):
        raise NLPTransferError(
            f"row {row} of the {split} split has {len(texts)} answer texts but {len(starts)} answer_start values"
        )
    try:
        return {"text": [str(t) for t in texts], "answer_start": [int(s) for s in starts]}
    except (TypeError, ValueError):
        raise NLPTransferError(f"row {row} of the {split} split: answer_start must be an integer") from None


def _canonical(ds: Dataset, split: str, columns: dict[str, str]) -> Dataset:
    """Flat rows with the user's column names -> the five canonical columns."""
    flags = {"context": "--context_column", "question": "--question_column", "answers": "--answer_column"}
    for key, flag in flags.items():
        if columns[key] not in ds.column_names:
            raise NLPTransferError(
                f"column '{columns[key]}' not found in the {split} split; its columns are: "
                f"{', '.join(ds.column_names)} (choose one with {flag}, or pass nested SQuAD json)"
            )
    n = len(ds)
    if columns["id"] in ds.column_names:
        ids = [str(x) for x in ds[columns["id"]]]
    else:
        ids = [f"{split}-{i}" for i in range(n)]
        logger.info(
            "the %s split has no '%s' column: its questions are numbered %s-0, %s-1, ...",
            split,
            columns["id"],
            split,
            split,
        )
    titles = (
        ["" if t is None else str(t) for t in ds[columns["title"]]]
        if columns["title"] in ds.column_names
        else [""] * n
    )
    col = columns["answers"]
    return Dataset.from_dict(
        {
            "id": ids,
            "title": titles,
            "context": ["" if c is None else str(c) for c in ds[columns["context"]]],
            "question": ["" if q is None else str(q) for q in ds[columns["question"]]],
            "answers": [_parse_answers(a, split, i, col) for i, a in enumerate(ds[col])],
        },
        features=FEATURES,
    )


def load_qa_datasets(
    *,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    id_column: str = "id",
    title_column: str = "title",
    context_column: str = "context",
    question_column: str = "question",
    answer_column: str = "answers",
    cache_dir: str | None = None,
) -> DatasetDict:
    """Load SQuAD-format splits from local files or the Hub into the canonical columns (see the module docstring).

    Args:
        dataset_name (`str`, *optional*): Hub dataset id (``squad``, ``squad_v2``, ...); ignored with ``train_file``.
        dataset_config_name (`str`, *optional*): Hub dataset configuration.
        train_file, validation_file, test_file (`str`, *optional*): nested SQuAD json (``.json``/``.json.gz``) or
            flat json/jsonl/csv/tsv/parquet rows (optionally ``.gz``).
        id_column, title_column, context_column, question_column, answer_column (`str`): flat rows' column names.
        cache_dir (`str`, *optional*): the `datasets` cache folder.

    Returns:
        `datasets.DatasetDict` with the splits that exist (``dev``/``valid`` renamed to ``validation``).
    """
    columns = {
        "id": id_column,
        "title": title_column,
        "context": context_column,
        "question": question_column,
        "answers": answer_column,
    }
    if train_file is None and (validation_file or test_file):
        raise NLPTransferError("--validation_file/--test_file were given without --train_file: add --train_file")
    if train_file is None and not dataset_name:
        raise NLPTransferError(
            "no data: pass --train_file (SQuAD json or flat rows), --dataset_name squad (needs a network), or a "
            "shipped config such as --config recipes/qa/minilm_squad_v1_split_full.yaml"
        )
    out = {}
    if train_file is not None:
        if dataset_name:
            logger.warning("both --dataset_name and --train_file given: using the files")
        for split, path in (("train", train_file), ("validation", validation_file), ("test", test_file)):
            if path is None:
                continue
            what = f"--{split}_file"
            check_file(path, what)
            builder, kwargs = file_format(path)
            nested = builder == "json" and path.removesuffix(".gz").lower().endswith(".json")  # not .jsonl
            rows = _read_squad_json(path, what) if nested else None
            if rows is not None:
                out[split] = Dataset.from_list(rows, features=FEATURES)
                continue
            try:
                raw = datasets.load_dataset(
                    builder, data_files={split: path}, split=split, cache_dir=cache_dir, **kwargs
                )
            except Exception as e:  # noqa: BLE001 - any parser failure is a problem with the user's file
                raise NLPTransferError(f"could not parse {what} {path} as {builder}: {short_error(e)}") from None
            out[split] = _canonical(raw, split, columns)
        return DatasetDict(out)
    loaded = load_hub_dataset(
        dataset_name,
        dataset_config_name,
        cache_dir=cache_dir,
        offline="pass local SQuAD json or flat rows with --train_file/--validation_file",
    )
    for split, ds in loaded.items():
        if split in ("train", "validation", "test"):
            out[split] = _canonical(ds, split, columns)
    return DatasetDict(out)


# --------------------------------------------------------------------------------------------------- checks
def _find_near(context: str, text: str, start: int, distance: int) -> int | None:
    best = None
    pos = context.find(text)
    while pos != -1:
        if abs(pos - start) <= distance and (best is None or abs(pos - start) < abs(best - start)):
            best = pos
        pos = context.find(text, pos + 1)
    return best


def check_examples(ds: Dataset, *, split: str, version_2_with_negative: bool = False) -> Dataset:
    """Check one split and repair what can be repaired (see the module docstring for each case).

    Answer texts are stripped of surrounding whitespace (``answer_start`` moved with them). In ``train``, answers
    whose ``answer_start`` can't be repaired are removed and questions left without an answer are dropped; in other
    splits such answers keep their text with ``answer_start = -1`` (gold for EM/F1, no start/end label).

    Returns:
        The checked split.
    """
    ids, contexts, questions, answers = (list(ds[c]) for c in ("id", "context", "question", "answers"))
    seen: set[str] = set()
    for qid in ids:
        if qid in seen:
            raise NLPTransferError(
                f"question id {qid!r} appears more than once in the {split} split: ids must be unique "
                "(predictions.json is keyed by them)"
            )
        seen.add(qid)
    for values, what, fix in (
        (contexts, "context", "an extractive model takes its answer from the context: fill it in or drop them"),
        (questions, "question", "fill it in or drop them"),
    ):
        empty = [i for i, v in enumerate(values) if not v or not v.strip()]
        if empty:
            raise NLPTransferError(
                f"{len(empty)} question(s) of the {split} split have no {what} (first: id {ids[empty[0]]!r}): {fix}"
            )

    keep, new_answers = [], []
    no_answer, repaired, unusable, dropped = [], 0, [], 0
    for i, (ctx, ans) in enumerate(zip(contexts, answers)):
        texts, starts = [], []
        for text, start in zip(ans["text"], ans["answer_start"]):
            stripped = text.strip()
            if not stripped:
                continue  # an empty answer text means "no answer" (checked below)
            start += len(text) - len(text.lstrip())
            if ctx[start : start + len(stripped)] != stripped:
                near = _find_near(ctx, stripped, start, REPAIR_DISTANCE)
                if near is None:
                    unusable.append(ids[i])
                    if split == "train":
                        continue
                    start = -1
                else:
                    repaired += 1
                    start = near
            texts.append(stripped)
            starts.append(start)
        had_answer = any(t.strip() for t in ans["text"])
        if not had_answer and not version_2_with_negative:
            no_answer.append(ids[i])
        if had_answer and not texts:  # every answer unusable (train only)
            dropped += 1
            continue
        keep.append(i)
        new_answers.append({"text": texts, "answer_start": starts})
    if no_answer:
        raise NLPTransferError(
            f"{len(no_answer)} question(s) of the {split} split have no answer (first: id {no_answer[0]!r}); in SQuAD "
            "v1 every question has one: if the data has unanswerable questions (SQuAD v2), pass "
            "--version_2_with_negative true, else fix or drop them"
        )
    if repaired or unusable:
        what = f"{len(unusable)} not found within {REPAIR_DISTANCE} characters and " + (
            f"not used for training ({dropped} question(s) left without an answer dropped)"
            if split == "train"
            else "kept as gold text only"
        )
        logger.warning(
            "%s split: %d answer_start value(s) did not point at the answer text: %d repaired (the text occurs "
            "nearby), %s%s",
            split,
            repaired + len(unusable),
            repaired,
            what,
            f" (first: id {unusable[0]!r})" if unusable else "",
        )
    out = ds.select(keep) if len(keep) < len(ds) else ds
    out = out.remove_columns("answers").add_column("answers", new_answers, feature=FEATURES["answers"])
    if len(out) == 0:
        raise NLPTransferError(f"no usable question left in the {split} split: check the answer_start values")
    return out


# ---------------------------------------------------------------------------------------------- splitting
def article_keys(ds: Dataset) -> list[str]:
    """The group of every question for by-article splitting: its title, or its context when there is no title."""
    return [t if t else "context:" + c for t, c in zip(ds["title"], ds["context"])]


def split_by_article(ds: Dataset, *, fraction: float, seed: int = 42) -> tuple[Dataset, Dataset, list[str]]:
    """Hold out ``round(fraction * n_articles)`` whole articles (at least one), chosen with ``seed``.

    Questions are grouped by title (by context when titles are missing), so no article, and hence no paragraph,
    has questions on both sides.

    Returns:
        `(train, held_out, held_out_titles)`.
    """
    if not 0 < fraction < 1:
        raise NLPTransferError(f"--validation_split must be in (0, 1) to hold out articles, got {fraction}")
    keys = article_keys(ds)
    groups = list(dict.fromkeys(keys))  # first-appearance order, then a seeded shuffle
    if len(groups) < 2:
        raise NLPTransferError(
            "cannot hold out a validation split by article: the training data has a single article (title); pass "
            "--validation_file"
        )
    n_held = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    rng = random.Random(seed)
    order = groups[:]
    rng.shuffle(order)
    held = set(order[:n_held])
    train_idx = [i for i, k in enumerate(keys) if k not in held]
    held_idx = [i for i, k in enumerate(keys) if k in held]
    titles = [g for g in groups if g in held]
    logger.info(
        "held out %d of %d articles (%d of %d questions) as the validation split (seed %d)",
        n_held,
        len(groups),
        len(held_idx),
        len(ds),
        seed,
    )
    return ds.select(train_idx), ds.select(held_idx), titles


def subsample(ds: Dataset, n: int | None, *, seed: int, flag: str) -> Dataset:
    """A seeded random subset of ``n`` questions (all of them when ``n`` is None or at least ``len(ds)``)."""
    if n is None:
        return ds
    if n <= 0:
        raise NLPTransferError(f"{flag} must be positive")
    return ds.shuffle(seed=seed).select(range(n)) if n < len(ds) else ds


def articles_summary(titles: list[str], limit: int = 10) -> str:
    """A short, readable list of held-out article titles for logs and the model card."""
    shown = [t for t in titles if not t.startswith("context:")]
    if not shown:
        return f"{len(titles)} paragraph group(s)"
    more = len(titles) - min(len(shown), limit)
    return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")


def load_from_args(args, *, seed: int) -> tuple[dict, str | None]:
    """The QA recipes' data step from a `QADataArguments`: load, check (and repair) every split, hold out whole
    articles when there is no validation split, take the seeded subsets.

    Returns:
        `(splits, split_note)`: split name -> checked `Dataset`, and the card's note on how the evaluation split
        was made (None when the data brought its own).
    """
    raw = load_qa_datasets(
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        train_file=args.train_file,
        validation_file=args.validation_file,
        test_file=args.test_file,
        id_column=args.id_column,
        title_column=args.title_column,
        context_column=args.context_column,
        question_column=args.question_column,
        answer_column=args.answer_column,
    )
    if "train" not in raw:
        raise NLPTransferError(
            f"no train split in the dataset (splits: {', '.join(raw) or 'none'}): pass --train_file"
        )
    v2 = args.version_2_with_negative
    dd = {split: check_examples(ds, split=split, version_2_with_negative=v2) for split, ds in raw.items()}
    label = os.path.basename(args.train_file) if args.train_file else args.dataset_name
    split_note = None
    if "validation" not in dd and args.validation_split > 0:
        dd["train"], dd["validation"], held = split_by_article(dd["train"], fraction=args.validation_split, seed=seed)
        n_articles = len(held) + len(set(article_keys(dd["train"])))
        logger.info("held-out articles: %s", articles_summary(held))
        split_note = (
            f"**Evaluation split:** {len(held)} of the {n_articles} articles of `{label}` held out whole "
            f"(seeded by-article split, seed {seed}; {len(dd['validation'])} questions): "
            f"{articles_summary(held)}. This is a low-resource split of one file, not an official benchmark "
            "split: do not compare these figures with published results on the official evaluation set."
        )
    for split, n, flag in (
        ("train", args.max_train_samples, "--max_train_samples"),
        ("validation", args.max_eval_samples, "--max_eval_samples"),
        ("test", args.max_test_samples, "--max_test_samples"),
    ):
        if split in dd:
            dd[split] = subsample(dd[split], n, seed=seed, flag=flag)
    logger.info("questions: %s", ", ".join(f"{s} {len(d)}" for s, d in dd.items()))
    return dd, split_note


def dataset_label(args) -> str:
    """How the card names the data: a local file by its name, a Hub id as given."""
    return os.path.basename(args.train_file) if args.train_file else args.dataset_name
