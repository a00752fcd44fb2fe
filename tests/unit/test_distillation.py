"""Distillation building blocks: the losses against hand-computed values, layer maps, students cut from teachers,
the teacher-output cache and the collator."""

import math

import numpy as np
import pytest
import torch

from nlp_transfer import distillation as D
from nlp_transfer.distillation import align_labels as _align
from nlp_transfer.errors import NLPTransferError


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def test_kd_loss_equals_hand_computed_value():
    s = [[1.0, 2.0, 0.0], [0.5, -0.5, 3.0]]
    t = [[2.0, 0.0, 1.0], [0.0, 1.0, 2.5]]
    T = 2.0
    want = 0.0
    for srow, trow in zip(s, t):
        p = _softmax([x / T for x in trow])
        q = _softmax([x / T for x in srow])
        want += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))
    want = want / 2 * T * T  # mean over the 2 rows, scaled by T^2
    got = D.kd_loss(torch.tensor(s), torch.tensor(t), T)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # zero when the student matches the teacher, and T only rescales, never changes the optimum
    assert D.kd_loss(torch.tensor(t), torch.tensor(t), 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_distillation_loss_mixes_soft_and_hard_and_skips_unlabelled_rows():
    s = torch.tensor([[1.0, 2.0], [0.5, -0.5], [0.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([1, -100, 0])  # the middle row is unlabelled
    T, alpha = 2.0, 0.3
    soft = D.kd_loss(s, t, T).item()
    ce = (-math.log(_softmax([1.0, 2.0])[1]) - math.log(_softmax([0.0, 1.0])[0])) / 2  # labelled rows only
    got = D.distillation_loss(s, t, labels, temperature=T, alpha=alpha).item()
    assert got == pytest.approx(alpha * soft + (1 - alpha) * ce, rel=1e-6)
    # no labelled row: KD alone; alpha=0: plain cross-entropy
    assert D.distillation_loss(s, t, torch.full((3,), -100), temperature=T, alpha=alpha).item() == pytest.approx(soft)
    assert D.distillation_loss(s, t, labels, temperature=T, alpha=0.0).item() == pytest.approx(ce, rel=1e-6)


def test_hidden_state_loss_ignores_padding_and_uses_projection():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    th = tuple(torch.randn(2, 3, 4) for _ in range(2))
    sh = tuple(x.clone() for x in th)
    assert D.hidden_state_loss(sh, th, [(0, 0), (1, 1)], mask).item() == pytest.approx(0.0)
    noisy = tuple(x.clone() for x in sh)
    noisy[1][0, 2] += 5.0  # a padded position: ignored
    assert D.hidden_state_loss(noisy, th, [(0, 0), (1, 1)], mask).item() == pytest.approx(0.0)
    noisy[1][0, 0] += 1.0  # a real token, all 4 dims off by 1: squared error 4 over 3 tokens x 4 dims, 2 pairs
    assert D.hidden_state_loss(noisy, th, [(0, 0), (1, 1)], mask).item() == pytest.approx(4 / 12 / 2, rel=1e-5)
    # narrower student: a learned projection maps it to the teacher's width
    proj = D.make_projections(2, 4, 1)
    assert D.make_projections(4, 4, 1) is None
    narrow = (torch.randn(2, 3, 2),)
    loss = D.hidden_state_loss(narrow, th[:1], [(0, 0)], mask, proj)
    loss.backward()
    assert proj[0].weight.grad is not None and loss.item() > 0


def test_attention_loss_is_zero_for_equal_maps_and_positive_otherwise():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    ta = (torch.softmax(torch.randn(2, 2, 3, 3), -1),)
    assert D.attention_loss(ta, ta, [(0, 0)], mask).item() == pytest.approx(0.0, abs=1e-6)
    sa = (torch.softmax(torch.randn(2, 2, 3, 3), -1),)
    assert D.attention_loss(sa, ta, [(0, 0)], mask).item() > 0


def test_layer_maps_and_layer_lists():
    assert D.layer_pairs(3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert D.layer_pairs(2, 6, kept=[0, 3]) == [(0, 0), (1, 3)]
    assert D.parse_layers(None, 6) == [0, 2, 4]
    assert D.parse_layers("1, 3,5", 6) == [1, 3, 5]
    for bad, msg in (
        ("0,6", "6 does not exist"),
        ("2,1", "increasing order"),
        ("a,b", "comma-separated"),
        (",", "empty"),
    ):
        with pytest.raises(NLPTransferError, match=msg):
            D.parse_layers(bad, 6)


def test_student_cut_from_teacher_has_exactly_the_chosen_layers(tmp_path):
    from helpers import make_tiny_bert
    from transformers import AutoModelForSequenceClassification

    path = make_tiny_bert(str(tmp_path / "bert4"), num_layers=4)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    student = D.student_from_teacher(teacher, [1, 3])
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    t, s = teacher.state_dict(), student.state_dict()
    for new, old in enumerate([1, 3]):
        for k, v in s.items():
            if k.startswith(f"bert.encoder.layer.{new}."):
                assert torch.equal(v, t[k.replace(f"layer.{new}.", f"layer.{old}.")]), k
    for k in ("bert.embeddings.word_embeddings.weight", "classifier.weight", "bert.pooler.dense.weight"):
        assert torch.equal(s[k], t[k])
    assert not torch.equal(
        s["bert.encoder.layer.1.output.dense.weight"], t["bert.encoder.layer.1.output.dense.weight"]
    )
    # the cut student runs and differs from the teacher only through the dropped layers
    x = torch.tensor([[2, 5, 6, 3]])
    teacher.eval(), student.eval()
    assert student(input_ids=x).logits.shape == (1, 3)


def test_student_cut_from_gpt2(tmp_path):
    from helpers import make_tiny_gpt2
    from transformers import AutoModelForSequenceClassification

    path = make_tiny_gpt2(str(tmp_path / "gpt2"))
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, pad_token_id=0)
    student = D.student_from_teacher(teacher, [1])
    assert student.config.n_layer == 1
    assert torch.equal(
        student.state_dict()["transformer.h.0.attn.c_attn.weight"],
        teacher.state_dict()["transformer.h.1.attn.c_attn.weight"],
    )


def test_teacher_cache_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(3, 2)

    key = {"teacher": "abc", "data": "def", "max_seq_length": 16, "split": "train"}
    a, hit_a = D.cached_teacher_logits(str(tmp_path), key, compute)
    b, hit_b = D.cached_teacher_logits(str(tmp_path), key, compute)
    assert (hit_a, hit_b) == (False, True) and len(calls) == 1 and np.array_equal(a, b)
    D.cached_teacher_logits(str(tmp_path), {**key, "max_seq_length": 32}, compute)  # other preprocessing: a miss
    assert len(calls) == 2
    assert D.data_fingerprint(["a", "b"]) != D.data_fingerprint(["b", "a"])
    assert D.data_fingerprint(["ab"], ["c"]) != D.data_fingerprint(["a"], ["bc"])


def test_collator_pads_and_carries_teacher_logits(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    rows = [
        {**tok("good movie"), "label": 1, "length": 4, "teacher_logits": [0.1, 0.9]},
        {**tok("bad"), "label": -100, "length": 3, "teacher_logits": [0.8, 0.2]},
    ]
    batch = D.DistillationCollator(tok)(rows)
    assert set(batch) == set(tok("x")) | {"labels", "teacher_logits"}  # "length" dropped
    assert batch["input_ids"].shape == (2, 4) and batch["labels"].tolist() == [1, -100]
    assert batch["teacher_logits"].dtype == torch.float32 and batch["teacher_logits"].shape == (2, 2)


def test_label_alignment_by_name_then_ids():
    assert _align(["positive", "negative"], ["negative", "positive"], "data") == [1, 0]
    assert _align(["POSITIVE", "Negative"], ["negative", "positive"], "data") == [1, 0]
    assert _align(["0", "1"], ["negative", "positive"], "data") == [0, 1]  # integer labels read as ids
    with pytest.raises(NLPTransferError, match="does not know: neutral"):
        _align(["negative", "neutral"], ["negative", "positive"], "the data")
    with pytest.raises(NLPTransferError, match="does not know"):
        _align(["0", "1", "2"], ["negative", "positive"], "the data")


def _windows(tokens_per_window, start, end, example):
    """Flattened teacher windows as `qa_teacher_windows` returns them: offsets (-1 outside the context)."""
    offs = [o for w in tokens_per_window for o in w]
    return {
        "start": np.asarray(start, dtype=np.float32),
        "end": np.asarray(end, dtype=np.float32),
        "offsets": np.asarray([o if o else (-1, -1) for o in offs], dtype=np.int64),
        "lengths": np.asarray([len(w) for w in tokens_per_window]),
        "example": np.asarray(example),
    }


def test_qa_targets_identity_for_the_same_windows():
    # [CLS] q [SEP] ctx(0,3) ctx(4,7) [SEP]: a student with the same tokens gets the teacher's scores exactly
    offs = [None, None, None, (0, 3), (4, 7), None]
    t = _windows([offs], [0.5, 9, 9, 2.0, 3.0, 9], [0.25, 9, 9, 4.0, 1.0, 9], [0])
    st, en = D.map_qa_targets(t, [0], [offs])
    assert st[0] == [0.5, D.MASK, D.MASK, 2.0, 3.0, D.MASK] and en[0] == [0.25, D.MASK, D.MASK, 4.0, 1.0, D.MASK]


def test_qa_targets_map_across_tokenizers_by_characters():
    # context "alice went" -- teacher: words "alice"(0,5) "went"(6,10); student: "al"(0,2) "ice"(2,5) "went"(6,10)
    t = _windows([[None, (0, 5), (6, 10), None]], [0.0, 5.0, 1.0, 0.0], [0.0, 2.0, 7.0, 0.0], [0])
    st, en = D.map_qa_targets(t, [0], [[None, None, (0, 2), (2, 5), (6, 10), None]])
    # boundaries the teacher has a token for carry its scores; a start or end inside a teacher token is left out
    assert st[0][2] == 5.0 and st[0][3] == D.MASK and st[0][4] == 1.0
    assert en[0][2] == D.MASK and en[0][3] == 2.0 and en[0][4] == 7.0
    assert st[0][1] == D.MASK and st[0][5] == D.MASK and st[0][0] == 0.0


def test_qa_targets_pick_the_overlapping_teacher_window():
    # two teacher windows over one context; the student window covering chars 10..20 takes the second one's scores
    w1 = [None, (0, 5), (5, 10), None]
    w2 = [None, (10, 15), (15, 20), None]
    t = _windows([w1, w2], [1.0, 1, 1, 0, 2.0, 3, 4, 0], [1.0, 1, 1, 0, 2.0, 5, 6, 0], [0, 0])
    st, en = D.map_qa_targets(t, [0], [[None, (10, 15), (15, 20), None]])
    assert st[0] == [2.0, 3.0, 4.0, D.MASK] and en[0] == [2.0, 5.0, 6.0, D.MASK]


def test_pairing_refuses_what_the_pair_cannot_support():
    from types import SimpleNamespace as NS

    class Tok:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return self.vocab

    args = NS(hidden_weight=0.0, attention_weight=0.0)
    t, s = NS(config=NS(num_attention_heads=12)), NS(config=NS(num_attention_heads=6))
    assert D.check_pairing(args, t, s, Tok({"a": 0}), Tok({"b": 0}), None) is False  # logits only: fine
    assert D.check_pairing(args, t, s, Tok({"a": 0}), Tok({"b": 0}), [0, 2]) is True  # a cut student shares it
    with pytest.raises(NLPTransferError, match="share a tokenizer"):
        D.check_pairing(NS(hidden_weight=1.0, attention_weight=0.0), t, s, Tok({"a": 0}), Tok({"b": 0}), None)
    with pytest.raises(NLPTransferError, match="same number of attention heads"):
        D.check_pairing(NS(hidden_weight=0.0, attention_weight=1.0), t, s, Tok({"a": 0}), Tok({"a": 0}), None)
