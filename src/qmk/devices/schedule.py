"""The device's fault schedule: what goes wrong, in kernel epochs, as plain values.

:class:`FaultSchedule` is the kernel's ``[faults]`` table (docs/kernel.md): calibration
drift, the link's fidelity dropping, modules failing at given epochs, and the decoders'
capacity. It is a module of its own, apart from the device's logical models
(:mod:`qmk.devices.logical`), so the kernel's config loads it without the QEC layer.

>>> FaultSchedule(drift_per_epoch=0.5).drift_factor(4)
3.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The link fidelity of a fully mixed pair: the link never drops below it.
MIXED_PAIR_FIDELITY = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSchedule:
    """The faults injected into the simulated machine, in kernel epochs (none by default).

    Attributes:
        drift_per_epoch: growth of the drift factor per epoch (0: no drift).
        drift_start_epoch: the epoch drift starts at.
        link_fidelity: Werner fidelity of the link's Bell pairs at epoch 0.
        link_drop_per_epoch: how much the link's fidelity drops per epoch.
        link_latency_ns: the time the link takes to deliver one Bell pair between
            modules (a teleported gate waits for its pair: :mod:`qmk.qvm.teleport`).
        link_target: the fidelity purification must reach (or the program's, if lower).
        max_purification_rounds: most BBPSSW rounds the kernel runs.
        module_failures: ``(module_id, epoch)`` pairs: that module fails at that epoch.
        decoder_capacity: syndrome bits per second the decoders keep up with (None: any).
        distance_budget: the most the kernel raises a profile's distance against drift.
        local_decomposition: when purification cannot reach a channel's fidelity, prepare
            its pair inside the job's module (a logical H and CNOT) instead of over the
            link; False: the job fails with ``QK304 link-degraded``.
        drift_fence_cycles: under drift, the most logical cycles a job runs between two
            fences: the kernel adds fences to keep its epochs this short, and the job saves
            its state at a fence whenever that many operations ran since its last save
            (0: neither).
    """

    drift_per_epoch: float = 0.0
    drift_start_epoch: int = 0
    link_fidelity: float = 1.0
    link_drop_per_epoch: float = 0.0
    link_latency_ns: float = 0.0
    link_target: float = 0.95
    max_purification_rounds: int = 3
    module_failures: tuple[tuple[int, int], ...] = ()
    decoder_capacity: float | None = None
    distance_budget: int = 6
    drift_fence_cycles: int = 1000
    local_decomposition: bool = True

    def drift_factor(self, epoch: int) -> float:
        """The factor physical error rates are multiplied by at ``epoch`` (1: no drift)."""
        return 1.0 + self.drift_per_epoch * max(0, epoch - self.drift_start_epoch)

    def link_fidelity_at(self, epoch: int) -> float:
        """The link's raw Werner fidelity at ``epoch``."""
        return max(MIXED_PAIR_FIDELITY, self.link_fidelity - self.link_drop_per_epoch * epoch)

    def failures_due(self, epoch: int) -> tuple[int, ...]:
        """Modules whose scheduled failure is at or before ``epoch``."""
        return tuple(module for module, at in self.module_failures if at <= epoch)

    def to_json(self) -> dict[str, Any]:
        return {
            "drift_per_epoch": self.drift_per_epoch,
            "drift_start_epoch": self.drift_start_epoch,
            "link_fidelity": self.link_fidelity,
            "link_drop_per_epoch": self.link_drop_per_epoch,
            "link_latency_ns": self.link_latency_ns,
            "link_target": self.link_target,
            "max_purification_rounds": self.max_purification_rounds,
            "module_failures": [
                {"module": module, "epoch": epoch} for module, epoch in self.module_failures
            ],
            "decoder_capacity_bits_per_second": self.decoder_capacity,
            "distance_budget": self.distance_budget,
            "drift_fence_cycles": self.drift_fence_cycles,
            "local_decomposition": self.local_decomposition,
        }


__all__ = ["MIXED_PAIR_FIDELITY", "FaultSchedule"]
