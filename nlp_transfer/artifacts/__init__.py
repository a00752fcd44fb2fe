"""What a run leaves on disk, task-independent:

    folder.py       output-folder policy, staging and publishing (``metrics.json`` last), run config
    distributed.py  the plain trained model on rank 0 (ZeRO-3 shards gathered, autocast wrapper removed)
    saving.py       weights or adapter (+ base weights, ``merged/``) and tokenizer
    roundtrip.py    the round-trip record (``roundtrip_check.json``) and adapter reloading
    card.py         the model card, rendered from ``model_card_template.md``
    report.py       ``metrics.json`` and the training-curves PNG

Layering: artifacts imports neither `nlp_transfer.tasks` nor `nlp_transfer.hub`; tasks build on artifacts, and
`nlp_transfer.run` and the hub build on both.
"""

from .folder import (
    CARD_FILE,
    CURVES_FILE,
    FINISHED_MARKER,
    ROUNDTRIP_FILE,
    RUN_CONFIG_FILE,
    STAGING_NAME,
    check_output_dir,
    clear_output_dir,
    publish,
    staging_dir,
    write_run_config,
)

__all__ = [
    "CARD_FILE",
    "CURVES_FILE",
    "FINISHED_MARKER",
    "ROUNDTRIP_FILE",
    "RUN_CONFIG_FILE",
    "STAGING_NAME",
    "check_output_dir",
    "clear_output_dir",
    "publish",
    "staging_dir",
    "write_run_config",
]
