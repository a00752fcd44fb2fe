"""After training, on every rank: the plain trained model for rank 0 to save (ZeRO-3 shards gathered, the
mixed-precision forward wrapper removed)."""

from __future__ import annotations

from ..errors import NLPTransferError


def prepare_export(trainer) -> None:
    """Every rank calls this after training; rank 0's ``trainer.model`` is then the plain trained model to save:

    - mixed precision: accelerate patched ``forward`` to run under autocast; the patch is removed, so the round-trip
      check compares the saved fp32 weights with the same fp32 forward a user's ``pipeline`` runs (under bf16
      autocast the two differed by 1.5e-4 on a tiny model, over the check's tolerance);
    - DeepSpeed ZeRO-3: the shards are gathered (`gather_zero3`).
    """
    from accelerate.utils import extract_model_from_parallel

    gather_zero3(trainer)
    if trainer.is_world_process_zero():
        trainer.model = extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False)


def gather_zero3(trainer) -> None:
    """Make the trained model saveable on rank 0 under DeepSpeed ZeRO-3; a no-op otherwise.

    ZeRO-3 partitions every parameter across ranks, so rank 0's model holds empty placeholders: saving it writes an
    empty adapter, and the round-trip check cannot run it. Every rank calls this after training (the gather is a
    collective); rank 0 then gets an ordinary unsharded copy of the trained model (same class, same PEFT config,
    gathered weights) as ``trainer.model``. Needs ``zero3_save_16bit_model: true`` in the accelerate config (as in
    ``recipes/accelerate/deepspeed_zero3.yaml``). Untested here: no DeepSpeed on the CPU CI machines.
    """
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if not (getattr(trainer, "is_deepspeed_enabled", False) and plugin is not None and plugin.zero_stage == 3):
        return
    state = trainer.accelerator.get_state_dict(trainer.deepspeed)  # every rank; the full state dict on rank 0
    if not trainer.is_world_process_zero():
        return
    from peft import PeftModel, get_peft_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        base = model.get_base_model()
        fresh = get_peft_model(type(base)(base.config), model.peft_config["default"])
    else:
        fresh = type(model)(model.config)  # the constructor, not from_config: no zero.Init partitioning
    result = fresh.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if result.missing_keys:
        raise NLPTransferError(
            f"gathering the ZeRO-3 model gave no weights for {result.missing_keys[:3]}; please report this with "
            "your accelerate config"
        )
    trainer.model = fresh.eval()
