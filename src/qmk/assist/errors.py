"""Errors of the assistant (``qmk assist``): its model backend and the drafts it cannot verify.

This module registers the ``QI`` family in :data:`qmk.errors.REGISTRY`.

>>> str(AssistError.of("not-configured", "no model"))
'QI101 not-configured: no model'
"""

from __future__ import annotations

from qmk.errors import QMKError, register


class AssistError(QMKError):
    """The assistant cannot answer: no model, an unreachable or unusable one (exit 1)."""

    exit_status = 1


register(
    AssistError,
    (
        "QI101",
        "not-configured",
        "no model is configured, so the assistant makes no network call",
        "give --url and --model (or QMK_ASSIST_URL and QMK_ASSIST_MODEL, or [assist] url "
        "and model in the kernel's config): an Ollama or OpenAI-compatible server",
    ),
    (
        "QI102",
        "backend-unreachable",
        "the model server did not answer (connection refused, timeout, HTTP error)",
        "check that the server runs at the URL and serves the model named",
    ),
    (
        "QI103",
        "bad-reply",
        "the model's replies could not be used (no valid tool call or answer) within the "
        "step bound",
        "use a model that supports tool calling, or --structured for small local models",
    ),
    (
        "QI104",
        "unverified",
        "every program the model drafted failed QMK's validation; none is shown",
        "read the finding given, fix the program by hand, or ask again",
    ),
    (
        "QI105",
        "bad-option",
        "an assistant option out of range or unknown (api, steps, retries, shots)",
        "give a value in the range the message names",
    ),
)
