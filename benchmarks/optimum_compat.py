"""Does optimum's own ORTModelFor... load our `onnx/` folders? Run in a separate venv with a transformers that
optimum-onnx supports (it does not import on transformers 5, huggingface/optimum-onnx#114); nlp_transfer is not
needed there:

    python3 -m venv /tmp/onnxvenv && . /tmp/onnxvenv/bin/activate
    pip install torch==2.13.0 transformers==4.57.6 optimum-onnx==0.1.0 onnxruntime
    python benchmarks/optimum_compat.py CLASSIFY_OUT/onnx QA_OUT/onnx      # folders written by nlp-transfer export

For each folder: ORTModelForSequenceClassification / ORTModelForQuestionAnswering.from_pretrained(file_name=
"model.onnx"), its outputs against a bare onnxruntime session on the same input, and optimum's pipeline.
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from optimum.onnxruntime import ORTModelForQuestionAnswering, ORTModelForSequenceClassification
from transformers import AutoTokenizer, PreTrainedTokenizerFast, pipeline


def tokenizer(folder):
    try:
        return AutoTokenizer.from_pretrained(folder)
    except ValueError:  # a tokenizer saved by transformers 5 as "TokenizersBackend", a class 4.x does not have
        tc = json.load(open(f"{folder}/tokenizer_config.json"))
        special = {k: tc[k] for k in ("pad_token", "unk_token", "cls_token", "sep_token") if k in tc}
        return PreTrainedTokenizerFast(tokenizer_file=f"{folder}/tokenizer.json", **special)


def main(folders):
    for folder in folders:
        config = json.load(open(f"{folder}/config.json"))
        qa = any("QuestionAnswering" in a for a in config.get("architectures", []))
        cls = ORTModelForQuestionAnswering if qa else ORTModelForSequenceClassification
        tok, model = tokenizer(folder), cls.from_pretrained(folder, file_name="model.onnx")
        sess = ort.InferenceSession(f"{folder}/model.onnx")
        if qa:
            enc = tok(["who went to the park ?"], ["alice went to the park ."], return_tensors="np")
            out = model(**dict(enc))
            got = [np.asarray(out.start_logits), np.asarray(out.end_logits)]
        else:
            enc = tok(["good great movie", "awful bad plot"], return_tensors="np", padding=True)
            got = [np.asarray(model(**dict(enc)).logits)]
        want = sess.run(None, {i.name: enc[i.name] for i in sess.get_inputs()})
        diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
        task = "question-answering" if qa else "text-classification"
        p = pipeline(task, model=model, tokenizer=tok)
        shown = p(question="who went to the park ?", context="alice went to the park .") if qa else p("good movie")
        print(f"{folder}: {type(model).__name__} loaded; max |optimum - onnxruntime| = {diff:.1e}; pipeline: {shown}")


if __name__ == "__main__":
    main(sys.argv[1:])
