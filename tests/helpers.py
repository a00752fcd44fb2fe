"""Tiny models and datasets built in-process, so tests are hermetic, offline and fast."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess

POS = "good great fine nice superb lovely excellent happy".split()
NEG = "bad awful terrible poor boring sad dull worst".split()
NEUTRAL = "the a movie film plot acting story was is it this and".split()
WORDS = POS + NEG + NEUTRAL


def _tokenizer_object(special: list[str], post: str | None):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(special + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token=special[1] if post == "bert" else special[0]))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if post == "bert":
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
    return tk, vocab


def make_tiny_bert(path: str, *, num_layers: int = 2, hidden: int = 32, seed: int = 0) -> str:
    """A 2-layer BERT (hidden 32) with a word-level tokenizer, saved as a base checkpoint (no task head)."""
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tk, vocab = _tokenizer_object(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "bert")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        type_vocab_size=2,
    )
    import torch

    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_tiny_gpt2(path: str) -> str:
    """A 2-layer GPT-2 (n_embd 32) whose tokenizer has no pad token, as real GPT-style checkpoints."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tk, vocab = _tokenizer_object(["<|endoftext|>"], None)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        model_max_length=64,
    )
    cfg = GPT2Config(
        vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def sentiment_rows(n: int, seed: int = 0, labels=("negative", "positive")) -> list[dict]:
    """Rows whose label is readable from the words (so a tiny model learns it in a few steps)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = i % 2
        words = [rng.choice(POS if y else NEG) for _ in range(2)] + rng.sample(NEUTRAL, rng.randint(1, 4))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": labels[y]})
    return rows


def write_rows(path: str, rows: list[dict], fmt: str | None = None) -> str:
    fmt = fmt or os.path.splitext(path)[1].lstrip(".")
    if fmt in ("csv", "tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="," if fmt == "csv" else "\t")
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    elif fmt == "json":
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f)
    elif fmt == "parquet":
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path)
    else:
        raise ValueError(fmt)
    return path


def one_error_line(r: subprocess.CompletedProcess, expected: str) -> str:
    """A user error, as the CLI reports it: exit 2, no traceback, one `nlp-transfer: error:` line with ``expected``."""
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("nlp-transfer: error:")]
    assert len(lines) == 1 and expected in lines[0], r.stderr[-2000:]
    return lines[0]


# ------------------------------------------------------------------------------------------ extractive QA
QA_NAMES = "alice bob carol dave erin frank grace heidi ivan judy".split()
QA_FILLER = (
    "the a of in on at was is and to went saw with for by from red blue green old new big small city park house "
    "river day night"
).split()
QA_WORDS = QA_NAMES + QA_FILLER + "who what where when did which there".split() + ["?", ".", ","]


def make_tiny_qa_bert(path: str, max_positions: int = 64) -> str:
    """A 2-layer BERT (hidden 32) with a word-level tokenizer over `QA_WORDS` (one token per word or punctuation
    mark, so token positions are easy to work out by hand), saved as a base checkpoint (no QA head)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(special + QA_WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_positions,
    )
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_tiny_qa_gpt2(path: str) -> str:
    """A 2-layer GPT-2 over the QA vocabulary; its tokenizer has no pad token, as real GPT-style checkpoints."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<|endoftext|>"] + QA_WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        model_max_length=64,
    )
    cfg = GPT2Config(
        vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def qa_rows(n: int, seed: int = 0, *, n_articles: int = 4, min_words: int = 6, max_words: int = 30) -> list[dict]:
    """Flat SQuAD-style rows (id, title, context, question, answers{text, answer_start}) that a tiny model can
    learn: every context holds exactly one name among filler words, and the answer is that name."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(QA_FILLER) for _ in range(rng.randint(min_words, max_words))]
        name = rng.choice(QA_NAMES)
        pos = rng.randint(0, len(words))
        words.insert(pos, name)
        context = " ".join(words) + " ."
        start = len(" ".join(words[:pos])) + (1 if pos else 0)
        assert context[start : start + len(name)] == name
        rows.append(
            {
                "id": f"q{seed}-{i}",
                "title": f"article-{i % n_articles}",
                "context": context,
                "question": rng.choice(["who was there ?", "who did it ?", "who went to the park ?"]),
                "answers": {"text": [name], "answer_start": [start]},
            }
        )
    return rows


def squad_nested(rows: list[dict], version: str = "1.1") -> dict:
    """The nested SQuAD json ({"version", "data": [{"title", "paragraphs": [{"context", "qas"}]}]}) of flat rows;
    rows sharing a title and context share an article and a paragraph."""
    articles: dict[str, dict[str, list]] = {}
    for r in rows:
        paragraphs = articles.setdefault(r["title"], {})
        answers = [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]
        qa = {"id": r["id"], "question": r["question"], "answers": answers}
        if version.startswith("2"):
            qa["is_impossible"] = not answers
        paragraphs.setdefault(r["context"], []).append(qa)
    return {
        "version": version,
        "data": [
            {"title": t, "paragraphs": [{"context": c, "qas": qas} for c, qas in ps.items()]}
            for t, ps in articles.items()
        ],
    }
