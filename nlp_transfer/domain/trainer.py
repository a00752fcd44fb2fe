"""The domain-adaptation `Trainer`: the source batch's loss as usual, plus, on a batch of unlabelled target text
drawn each step, a domain-adversarial term (``dann``) or a two-view consistency term (``consistency``).

- ``dann`` (Ganin & Lempitsky 2015, "Unsupervised Domain Adaptation by Backpropagation"): a small MLP (the domain
  discriminator) reads the representation the classification head reads, for the source and the target batch, and
  learns to tell them apart (BCE); between the two sits a gradient-reversal layer, so the encoder receives
  ``-lambda_p`` times the discriminator's gradient and learns features the discriminator cannot separate. As in the
  paper, ``lambda_p = 2 / (1 + exp(-10 p)) - 1`` (p = training progress in [0, 1]) scales only the reversed gradient:
  the discriminator itself learns at full strength from the first step.
- ``consistency``: two stochastic views of the target batch (dropout on; the second optionally token-masked);
  ``KL(p_view1 || p_view2)`` with view 1 detached, so the clean view is the target the noisy view is pulled to (as in
  UDA, Xie et al. 2019): letting both sides move would also reward flattening the clean prediction to agree.

The discriminator trains with the model (its own optimizer group) and is saved in each checkpoint (`DOMAIN_FILE`,
with how many target batches were drawn, so a resumed run continues the same target order), never in the exported
folder: it is not a submodule of the model.
"""

from __future__ import annotations

import copy
import logging
import math
import os

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..errors import NLPTransferError
from ..heads import find_head, head_width, pool_head_input

logger = logging.getLogger(__name__)

DOMAIN_FILE = "domain_adaptation.pt"  # in checkpoints only: the discriminator and the target-batch position


# ------------------------------------------------------------------------------------------- the pieces
class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """The gradient-reversal layer: identity forward, gradient times ``-coeff`` backward."""
    return _ReverseGradient.apply(x, coeff)


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's schedule ``2 / (1 + exp(-gamma p)) - 1``: 0 at the start, ~1 by the end."""
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def make_discriminator(width: int, hidden: int) -> nn.Module:
    """The domain discriminator: one hidden ReLU layer, one logit (target = 1)."""
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def domain_loss(discriminator: nn.Module, source: torch.Tensor, target: torch.Tensor, coeff: float):
    """BCE of the discriminator on source (0) and target (1) features seen through the gradient-reversal layer;
    returns ``(loss, accuracy)`` (accuracy on these features, detached)."""
    feats = reverse_gradient(torch.cat([source, target]), coeff)
    logits = discriminator(feats).squeeze(-1).float()
    domain = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(logits.device)
    loss = F.binary_cross_entropy_with_logits(logits, domain)
    accuracy = ((logits > 0).float() == domain).float().mean().detach()
    return loss, accuracy


def consistency_loss(view1_logits: torch.Tensor, view2_logits: torch.Tensor) -> torch.Tensor:
    """``KL(p1 || p2)`` per example (batch mean), temperature 1, with view 1 detached (the target distribution)."""
    return F.kl_div(
        F.log_softmax(view2_logits.float(), -1),
        F.log_softmax(view1_logits.detach().float(), -1),
        log_target=True,
        reduction="batchmean",
    )


def mask_tokens(batch: dict, probability: float, mask_id: int, special_ids: list[int]) -> dict:
    """A copy of ``batch`` whose non-special, non-padding tokens are each replaced by ``mask_id`` with
    ``probability`` (the torch RNG, which the Trainer seeds and restores on resume)."""
    if probability <= 0:
        return batch
    ids = batch["input_ids"]
    can = batch["attention_mask"].bool() & ~torch.isin(
        ids, torch.tensor(special_ids, dtype=ids.dtype, device=ids.device)
    )
    hit = (torch.rand(ids.shape, device=ids.device) < probability) & can
    return {**batch, "input_ids": ids.masked_fill(hit, mask_id)}


class _Cycle(torch.utils.data.Sampler):
    """Indices in a seeded order, a new one each pass (accelerate calls ``set_epoch`` with the pass number)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


# ---------------------------------------------------------------------------------------------- the trainer
class DomainAdaptationTrainer(Trainer):
    """`Trainer` whose training loss adds a ``dann`` or ``consistency`` term on a target batch per step.

    Args (beyond `Trainer`'s):
        method (`str`): ``dann`` or ``consistency``.
        target_rows (`list[dict]`): the tokenised target texts (model inputs, unpadded).
        target_batch_size (`int`): target texts per step and device.
        adversarial_weight, consistency_weight (`float`): the terms' weights.
        mask_probability (`float`), mask_token_id (`int`, *optional*): consistency's token masking (second view).
        discriminator_hidden (`int`): dann's MLP width.
        discriminator_learning_rate (`float`): dann's discriminator peak learning rate (its own optimizer group,
            under the run's schedule). Well above a fine-tuning rate on purpose: a discriminator that lags the
            encoder is pushed below chance (the reversed gradient makes it confidently wrong) rather than to chance.
    """

    def __init__(
        self,
        *args,
        method: str,
        target_rows: list[dict],
        target_batch_size: int,
        adversarial_weight: float = 0.1,
        consistency_weight: float = 1.0,
        mask_probability: float = 0.0,
        mask_token_id: int | None = None,
        discriminator_hidden: int = 256,
        discriminator_learning_rate: float = 1e-3,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if method not in ("dann", "consistency"):
            raise ValueError(f"unknown domain adaptation method {method!r}")
        if self.processing_class is None:
            raise ValueError(
                "DomainAdaptationTrainer pads the target batches with processing_class: pass the tokenizer"
            )
        self.method = method
        self.target_rows, self.target_batch_size = target_rows, target_batch_size
        self.adversarial_weight, self.consistency_weight = adversarial_weight, consistency_weight
        self.mask_probability, self.mask_token_id = mask_probability, mask_token_id
        self.discriminator_learning_rate = discriminator_learning_rate
        self.special_ids = list(getattr(self.processing_class, "all_special_ids", []) or [])
        self.head_name, self.head = find_head(self.model, flag="--domain_adaptation")
        self._warn_if_features_are_frozen()
        self.discriminator = None
        if method == "dann":
            with torch.random.fork_rng(devices=[]):  # the same start on every rank, the run's RNG untouched
                torch.manual_seed(self.args.seed)
                self.discriminator = make_discriminator(head_width(self.head), discriminator_hidden)
            self.discriminator.to(self.args.device)
            self._discriminator_start = copy.deepcopy(self.discriminator.state_dict())
        elif mask_probability <= 0 and not any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.model.modules()):
            raise NLPTransferError(
                "--domain_adaptation consistency: this model has no dropout, so the two views are identical; set "
                "--consistency_mask_probability (e.g. 0.15)"
            )
        self._captured = self._hook = None
        self._loader = self._iterator = None
        self.target_batches_drawn = 0  # restored from the checkpoint on resume
        self._stats: dict = {}
        self._stats_n = 0

    def _warn_if_features_are_frozen(self) -> None:
        head = {id(p) for p in self.head.parameters()}
        if not any(p.requires_grad and id(p) not in head for p in self.model.parameters()):
            logger.warning(
                "only the classification head trains: the features it reads cannot adapt to the target domain, so "
                "--domain_adaptation %s can change the head alone (use --strategy full, partial or lora)",
                self.method,
            )

    # -------------------------------------------------------------------------------- features and target batches
    def _capture(self, module, args, kwargs, output):
        x = args[0] if args else next(iter(kwargs.values()))
        self._captured = (x, output.dim() if isinstance(output, torch.Tensor) else 2)

    def _features(self, attention_mask) -> torch.Tensor:
        x, out_dim = self._captured
        return pool_head_input(x, out_dim, attention_mask)

    def _target_loader(self):
        if self._loader is None:
            from transformers import DataCollatorWithPadding

            loader = torch.utils.data.DataLoader(
                self.target_rows,
                batch_size=self.target_batch_size,
                sampler=_Cycle(len(self.target_rows), self.args.seed),
                collate_fn=DataCollatorWithPadding(self.processing_class),
                # its own generator: starting a pass must not draw from the global RNG (dropout's), or a resumed
                # run, which starts a pass where the uninterrupted one did not, would drift from it
                generator=torch.Generator().manual_seed(self.args.seed),
            )
            self._loader = self.accelerator.prepare(loader)  # sharded across ranks like the source batches
        return self._loader

    def _next_target_batch(self) -> dict:
        loader = self._target_loader()
        if self._iterator is None:  # first draw of this process: continue where a resumed run left off
            passes, offset = divmod(self.target_batches_drawn, len(loader))
            loader.set_epoch(passes)
            self._iterator = iter(loader)
            for _ in range(offset):
                next(self._iterator)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = iter(loader)  # accelerate moves the sampler to its next pass (a new order)
            batch = next(self._iterator)
        self.target_batches_drawn += 1
        return dict(batch)

    # ----------------------------------------------------------------------------------------------- the loss
    def train(self, *args, **kwargs):
        self._hook = self.head.register_forward_hook(self._capture, with_kwargs=True)
        try:
            return super().train(*args, **kwargs)
        finally:
            self._hook.remove()
            self._hook = self._captured = None

    def reset_for_trial(self, model) -> None:
        """``--hpo_trials``: each trial's model (a rebuilt adapter is a new module tree) gets the feature hook, and
        the discriminator and the target batches start where the first trial's did."""
        self.head_name, self.head = find_head(model, flag="--domain_adaptation")
        if self._hook is not None:
            self._hook.remove()
            self._hook = self.head.register_forward_hook(self._capture, with_kwargs=True)
        if self.discriminator is not None:
            self.discriminator.load_state_dict(self._discriminator_start)
        self.target_batches_drawn, self._iterator = 0, None
        self._stats, self._stats_n = {}, 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation: the plain loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        source = self._features(inputs.get("attention_mask"))
        target_batch = self._next_target_batch()
        # the target forward goes around DDP's wrapper: one DDP forward per backward; the gradients of both
        # forwards meet in the same parameters and DDP averages them in the one backward
        net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        if self.method == "dann":
            net(**target_batch)
            target = self._features(target_batch.get("attention_mask"))
            coeff = dann_lambda(self.state.global_step / max(self.state.max_steps, 1))
            term, accuracy = domain_loss(self.discriminator, source, target, coeff)
            loss = loss + self.adversarial_weight * term
            self._record(domain_loss=term.detach(), domain_accuracy=accuracy, domain_lambda=coeff)
        else:
            with torch.no_grad():
                view1 = net(**target_batch).logits
            noisy = mask_tokens(target_batch, self.mask_probability, self.mask_token_id, self.special_ids)
            term = consistency_loss(view1, net(**noisy).logits)
            loss = loss + self.consistency_weight * term
            self._record(consistency_loss=term.detach())
        self._captured = None
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # not inside DDP: average its gradients here, once per optimizer step (the last micro-batch)
        if self.discriminator is not None and self.accelerator.num_processes > 1 and self.accelerator.sync_gradients:
            for p in self.discriminator.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.accelerator.num_processes
        return loss

    def _record(self, **values) -> None:  # tensors stay on the device until a log (no sync per step)
        for k, v in values.items():
            self._stats[k] = self._stats.get(k, 0.0) + v
        self._stats_n += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._stats_n and "loss" in logs:  # a training log: the means since the last one (this rank's batches)
            logs.update({k: round(float(v) / self._stats_n, 4) for k, v in self._stats.items()})
            self._stats, self._stats_n = {}, 0
        super().log(logs, start_time)

    # ------------------------------------------------------------------------- optimizer and checkpoints
    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.discriminator is not None:
            mine = {id(p) for p in self.discriminator.parameters()}
            if not any(id(p) in mine for g in optimizer.param_groups for p in g["params"]):
                optimizer.add_param_group(
                    {
                        "params": list(self.discriminator.parameters()),
                        "weight_decay": 0.0,
                        "lr": self.discriminator_learning_rate,
                    }
                )
                # Trainer zeroes the model's gradients after each step; the discriminator's, outside it, here
                optimizer.register_step_post_hook(lambda *_: self.discriminator.zero_grad(set_to_none=True))
        return optimizer

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder):
            state = {"method": self.method, "target_batches_drawn": self.target_batches_drawn}
            if self.discriminator is not None:
                state["discriminator"] = self.discriminator.state_dict()
            torch.save(state, os.path.join(folder, DOMAIN_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, DOMAIN_FILE)
        if not os.path.isfile(path):
            return  # `setup` refuses such a resume before training; a direct caller starts the discriminator anew
        state = torch.load(path, map_location=self.args.device, weights_only=True)
        self.target_batches_drawn = int(state["target_batches_drawn"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
