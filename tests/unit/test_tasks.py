"""The task registry (nlp_transfer.tasks): what is registered, which task a checkpoint was trained for, and which
task replays a folder's round-trip record."""

import json

import pytest

from nlp_transfer import tasks
from nlp_transfer.artifacts import roundtrip
from nlp_transfer.errors import NLPTransferError


def test_every_task_is_registered_under_its_pipeline_tag():
    assert tasks.TASKS == {
        "text-classification": tasks.CLASSIFICATION,
        "question-answering": tasks.QUESTION_ANSWERING,
        "fill-mask": tasks.FILL_MASK,
        "text-generation": tasks.TEXT_GENERATION,
    }
    assert tasks.get("question-answering") is tasks.QUESTION_ANSWERING
    # the language-model tasks take no adapters (pretrain refuses them), so no PEFT task type maps to them
    assert {t.peft_task_type for t in tasks.TASKS.values()} == {"SEQ_CLS", "QUESTION_ANS", ""}
    with pytest.raises(NLPTransferError, match="unknown task 'summarization' .*text-classification"):
        tasks.get("summarization")


def _describe(files: dict) -> str:
    """A test id: the architecture and the adapter's task type the folder's files name."""
    parts = [c.get("task_type") or c.get("architectures", ["no-architectures"])[0] for c in files.values()]
    return "+".join(parts) or "empty"


@pytest.mark.parametrize(
    "files, task",
    [
        ({"config.json": {"architectures": ["BertForQuestionAnswering"]}}, "question-answering"),
        ({"config.json": {"architectures": ["LlamaForQuestionAnswering"]}}, "question-answering"),
        ({"config.json": {"architectures": ["GPT2ForSequenceClassification"]}}, "text-classification"),
        ({"config.json": {"architectures": ["BertModel"]}}, None),  # a base checkpoint: no head yet
        ({"config.json": {"architectures": ["GPT2LMHeadModel"]}}, None),  # GPT-2 names its causal class LMHeadModel
        ({"config.json": {"architectures": ["BertForMaskedLM"]}}, "fill-mask"),  # an `nlp-transfer pretrain` folder
        ({"config.json": {"architectures": ["LlamaForCausalLM"]}}, "text-generation"),
        ({"config.json": {"model_type": "bert"}}, None),
        ({"config.json": {"architectures": ["BertModel"]}, "adapter_config.json": {"task_type": "QUESTION_ANS"}},
         "question-answering"),
        ({"config.json": {"architectures": ["BertModel"]}, "adapter_config.json": {"task_type": "SEQ_CLS"}},
         "text-classification"),
        ({"adapter_config.json": {"task_type": "CAUSAL_LM"}}, None),
        ({}, None),
    ],
    ids=lambda v: _describe(v) if isinstance(v, dict) else str(v),
)  # fmt: skip
def test_task_of_checkpoint(files, task, tmp_path):
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    assert tasks.task_of_checkpoint(str(tmp_path)) == task


def test_task_of_checkpoint_is_none_for_what_it_cannot_read(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert tasks.task_of_checkpoint(str(tmp_path)) is None
    assert tasks.task_of_checkpoint("some-org/some-model") is None  # a Hub id: nothing on disk to read


def test_verify_recorded_dispatches_on_the_recorded_task(tmp_path, monkeypatch):
    for task in tasks.TASKS.values():
        monkeypatch.setattr(task, "replay", lambda folder, rec, name=task.name: {name: (folder, rec)})
    roundtrip.record(str(tmp_path), "question-answering", atol=1e-4)
    assert tasks.verify_recorded(str(tmp_path)) == {
        "question-answering": (str(tmp_path), {"task": "question-answering", "atol": 1e-4})
    }
    roundtrip.record(str(tmp_path), "text-classification")
    assert set(tasks.verify_recorded(str(tmp_path))) == {"text-classification"}
    roundtrip.record(str(tmp_path), "summarization")
    with pytest.raises(NLPTransferError, match="unknown task 'summarization'"):
        tasks.verify_recorded(str(tmp_path))


def test_verify_recorded_needs_a_readable_record(tmp_path):
    with pytest.raises(NLPTransferError, match="cannot read .*roundtrip_check.json.*rerun the recipe"):
        tasks.verify_recorded(str(tmp_path))
    (tmp_path / "roundtrip_check.json").write_text('{"task": "text-classif')
    with pytest.raises(NLPTransferError, match="cannot read"):
        tasks.verify_recorded(str(tmp_path))
