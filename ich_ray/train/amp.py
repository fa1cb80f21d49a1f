"""Mixed precision in one place: autocast, loss scaling, backward, unscale, clip, step, update.

Modelled on timm's `NativeScaler` and nanoGPT's `ctx`/`scaler`: the whole sequence lives in `AmpStepper.step`
so no caller can step the optimizer twice or forget to unscale before clipping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_precision(precision: str, device_type: str) -> str:
    """`auto`: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device_type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class AmpStepper:
    """Owns the autocast context and the (optional) GradScaler for one optimizer."""

    def __init__(self, device_type: str, precision: str = "auto", max_grad_norm: float | None = None):
        self.device_type = device_type
        self.precision = resolve_precision(precision, device_type)
        self.max_grad_norm = max_grad_norm
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[self.precision]
        # Only fp16 needs loss scaling: its exponent range underflows small gradients; bf16 does not.
        self.scaler = torch.amp.GradScaler(device_type, enabled=self.precision == "fp16")

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor]) -> bool:
        """Backward `loss` and step `optimizer` once. Returns False when fp16 overflow made the scaler skip it."""
        self.scaler.scale(loss).backward()
        if self.max_grad_norm is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], self.max_grad_norm)
        scale_before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        # The scaler lowers its scale exactly when it skipped the step because of inf/NaN gradients.
        return scale_before is None or self.scaler.get_scale() >= scale_before

    def state_dict(self) -> dict:
        return {"precision": self.precision, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("precision") == self.precision and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
