"""What a user does with a pushed model, run as a separate process against the local hub server (HF_ENDPOINT and
the token are set in its environment before huggingface_hub is imported). Prints one JSON object.

    python client.py compare --repo R --local DIR [--revision V] [--base BASE]
    python client.py card --repo R [--revision V]
    python client.py push-cases CASES.json       (runs `nlp-transfer push` once per case; see test_publish.py)
"""

import argparse
import io
import json
import os
import sys
from contextlib import redirect_stderr

TEXTS = ["a great and lovely film", "the plot was dull and bad", "superb acting, wonderful", "awful, boring"]


def logits_of(pipe):
    out = pipe(TEXTS, top_k=None, function_to_apply="none")
    return [{s["label"]: s["score"] for s in row} for row in out]


def max_diff(a, b):
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x)


def compare(args):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out = {}
    remote = pipeline("text-classification", model=args.repo, revision=args.revision, device="cpu")
    local = pipeline("text-classification", model=args.local, device="cpu")
    r, here = logits_of(remote), logits_of(local)
    out["pipeline_labels"] = sorted(r[0])
    out["pipeline_max_diff"] = max_diff(r, here)
    out["pipeline_top"] = [max(x, key=x.get) for x in r]
    if args.base:  # the PEFT way, as the model card shows it
        from peft import PeftModel

        config = AutoConfig.from_pretrained(args.local)
        tok = AutoTokenizer.from_pretrained(args.local)
        enc = tok(TEXTS, padding=True, truncation=True, return_tensors="pt")

        def peft_logits(source, **kw):
            base = AutoModelForSequenceClassification.from_pretrained(args.base, num_labels=config.num_labels)
            model = PeftModel.from_pretrained(base, source, **kw).eval()
            with torch.no_grad():
                return model(**enc).logits

        a, b = peft_logits(args.repo, revision=args.revision), peft_logits(args.local)
        out["peft_max_diff"] = float((a - b).abs().max())
    print(json.dumps(out))


def compare_qa(args):
    """The QA folder's own pipeline from the hub (trust_remote_code runs the pushed qa_pipeline.py) vs locally."""
    from transformers import pipeline

    with open(args.questions) as f:
        questions = json.load(f)
    remote = pipeline("question-answering", model=args.repo, trust_remote_code=True, device="cpu")
    local = pipeline("question-answering", model=args.local, trust_remote_code=True, device="cpu")
    r, here = remote(questions), local(questions)
    print(json.dumps({"remote": r, "local": here}))


def card(args):
    from huggingface_hub import ModelCard, hf_hub_download, model_info

    path = hf_hub_download(args.repo, "README.md", revision=args.revision)
    c = ModelCard.load(path)
    c.validate()  # the server's /api/validate-yaml
    info = model_info(args.repo, revision=args.revision)
    print(
        json.dumps(
            {
                "text": c.text,
                "data": c.data.to_dict(),
                "eval_results": [
                    {"metric": e.metric_type, "value": e.metric_value, "split": e.dataset_split}
                    for e in (c.data.eval_results or [])
                ],
                "sha": info.sha,
                "files": sorted(s.rfilename for s in info.siblings),
            }
        )
    )


def push_cases(args):
    from nlp_transfer import cli

    with open(args.cases) as f:
        cases = json.load(f)
    results = []
    base_env = dict(os.environ)
    for case in cases:
        os.environ.clear()
        os.environ.update(base_env)
        for k, v in case.get("env", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if "fault" in case:
            import urllib.request

            req = urllib.request.Request(
                f"{os.environ['HF_ENDPOINT']}/_test/fault",
                data=json.dumps(case["fault"]).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            urllib.request.urlopen(req, timeout=10).close()
        err = io.StringIO()
        with redirect_stderr(err):
            try:
                code = cli.main(["push", *case["argv"]])
            except SystemExit as e:  # argparse
                code = e.code
        results.append({"code": code, "stderr": err.getvalue()})
    print(json.dumps(results))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--repo", required=True)
    c.add_argument("--local", required=True)
    c.add_argument("--revision", default=None)
    c.add_argument("--base", default=None)
    q = sub.add_parser("compare-qa")
    q.add_argument("--repo", required=True)
    q.add_argument("--local", required=True)
    q.add_argument("questions")
    d = sub.add_parser("card")
    d.add_argument("--repo", required=True)
    d.add_argument("--revision", default=None)
    e = sub.add_parser("push-cases")
    e.add_argument("cases")
    a = p.parse_args()
    {"compare": compare, "compare-qa": compare_qa, "card": card, "push-cases": push_cases}[a.cmd](a)
    sys.stdout.flush()
