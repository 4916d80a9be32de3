"""``qmk assist "PROMPT" [--file FILE]``: ask a local model, which works through QMK's tools.

The model is an Ollama or OpenAI-compatible server named by ``--url`` and ``--model``
(or ``QMK_ASSIST_URL``, ``QMK_ASSIST_MODEL``, ``QMK_ASSIST_API``); with none, no network
call is made: the command says how to configure one and prints QMK's deterministic
advice (:mod:`qmk.assist.advice`). With ``--socket`` the kernel's assistant answers
instead (``q_assist``: its model, its rate limit, its audit). See docs/assistant.md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from qmk import defaults
from qmk.commands import AddCommand

#: The environment variables that configure the model, by setting.
ENVIRONMENT = {"url": "QMK_ASSIST_URL", "model": "QMK_ASSIST_MODEL", "api": "QMK_ASSIST_API"}


def register(add: AddCommand) -> None:
    """Add ``qmk assist``."""
    parser = add("assist", "ask a local model about a program; it works through QMK's tools")
    parser.add_argument("prompt", help="the question, e.g. 'fix this program'")
    parser.add_argument("--file", metavar="FILE", help="the program the question is about")
    parser.add_argument("--url", help=f"the model server (${ENVIRONMENT['url']})")
    parser.add_argument("--model", help=f"the model's name (${ENVIRONMENT['model']})")
    parser.add_argument(
        "--api",
        choices=("openai", "ollama"),
        help=f"the server's API (${ENVIRONMENT['api']}; openai)",
    )
    parser.add_argument(
        "--structured",
        action="store_true",
        help="one forced tool call per reply (grammar-constrained; small local models)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=defaults.ASSIST_MAX_STEPS,
        help=f"model replies, at most ({defaults.ASSIST_MAX_STEPS})",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=defaults.ASSIST_MAX_RETRIES,
        help=f"drafts sent back after a refusal ({defaults.ASSIST_MAX_RETRIES})",
    )
    parser.add_argument("--seed", type=int, default=0, help="the model's sampling seed (0)")
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="the model's temperature (0)"
    )
    parser.add_argument(
        "--stream", action="store_true", help="print each step as a JSON line as it happens"
    )
    from qmk.commands.service import _client_options

    _client_options(parser)  # --socket: ask the kernel's assistant (q_assist) instead
    parser.set_defaults(run=_run, syscall="q_assist")


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.assist.advice import advice
    from qmk.assist.backends import Settings
    from qmk.assist.errors import AssistError
    from qmk.assist.loop import Event, assist
    from qmk.assist.tools import Context
    from qmk.commands import limits_of

    file_text = None
    if args.file is not None:  # read, not lowered: a program that fails is what to fix
        from qmk.frontends.errors import FrontendError

        try:
            with open(args.file, "rb") as handle:
                file_text = handle.read(limits_of(args).max_bytes or -1).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FrontendError.of("unreadable", f"{args.file}: {exc}") from None
    if args.socket:  # the kernel's assistant: its model, its rate, its audit
        from qmk.commands.service import _client

        with _client(args) as client:
            reply = client.q_assist(args.prompt, file_text)
        if args.json:
            out.write(json.dumps(reply.to_json(), indent=2, default=str) + "\n")
            return 0
        return _show(reply.tool_results, reply.advice, reply.text, reply.program, out)
    ctx = Context(file_text=file_text, file_name=args.file, limits=limits_of(args))
    settings = Settings(
        url=args.url or os.environ.get(ENVIRONMENT["url"]),
        model=args.model or os.environ.get(ENVIRONMENT["model"]),
        api=args.api or os.environ.get(ENVIRONMENT["api"]) or "openai",
        structured=args.structured,
        temperature=args.temperature,
        seed=args.seed,
        max_steps=args.max_steps,
        max_retries=args.max_retries,
    )
    if not settings.configured:
        note = AssistError.of(
            "not-configured",
            "no model is configured, so nothing was sent: give --url and --model (or "
            f"${ENVIRONMENT['url']} and ${ENVIRONMENT['model']}), e.g. --api ollama --url "
            "http://127.0.0.1:11434 --model qwen2.5-coder; QMK's own advice follows",
        )
        err.write(f"{note}\n")
        lines = advice(args.prompt, ctx) or [
            "QMK's own advice reads a program or an error code: pass --file FILE (it is "
            "validated, planned and estimated), or name a code such as QV202 in the question"
        ]
        for line in lines:
            out.write(line + "\n")
        return 0

    def emit(event: Event) -> None:
        if args.stream:
            out.write(json.dumps(event.to_json(), default=str) + "\n")
            out.flush()

    answer = assist(args.prompt, settings=settings, context=ctx, emit=emit)
    if args.stream:
        return 0
    if args.json:
        out.write(json.dumps(answer.to_json(), indent=2, default=str) + "\n")
        return 0
    return _show(answer.tool_results, (), answer.text, answer.program, out)


def _show(
    tool_results: Sequence[Mapping[str, Any]],
    advice: Sequence[Any],
    text: str,
    program: str | None,
    out: TextIO,
) -> int:
    """An answer for people (the kernel's or this process's): the tools' results, the
    advice, the text, the verified program."""
    for result in tool_results:
        out.write(f"[{result['tool']}] {json.dumps(result['result'], default=str)}\n")
    for line in advice:
        out.write(f"{line}\n")
    if text:
        out.write(text.rstrip() + "\n")
    if program is not None:
        out.write("verified program (QMK's validator passed it):\n")
        out.write(program.rstrip() + "\n")
    return 0
