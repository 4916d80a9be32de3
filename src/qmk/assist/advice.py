"""What the assistant says with no model: the planner's and the registry's advice, exactly.

:func:`advice` needs no network: for each error code named in the question (``QV202``,
``QS1006``...) the registry's meaning and fix; for the user's file, QMK's own tools run
in order (validate, then info, plan and estimate when it verifies).

>>> from qmk.assist.tools import Context
>>> lines = advice("what does QV202 mean?", Context())
>>> lines[0].startswith("QV202 ")
True
"""

from __future__ import annotations

import re

from qmk.assist.tools import Context, call

_CODE = re.compile(r"\bQ[A-Z][0-9]{3,5}\b")


def advice(prompt: str, ctx: Context) -> list[str]:
    """Lines of deterministic advice for ``prompt`` and the user's file."""
    from importlib import import_module

    from qmk.errors import FAMILIES, REGISTRY

    lines: list[str] = []
    for code in dict.fromkeys(_CODE.findall(prompt)):
        family = FAMILIES.get(code[:2])
        if family is not None:
            import_module(family.module)  # a family registers its codes when loaded
        if code in REGISTRY:
            entry = REGISTRY[code]
            lines.append(f"{code} {entry.name}: {entry.summary}; fix: {entry.fix}")
    if ctx.file_text is None:
        return lines
    name = ctx.file_name or "file"
    verdict = call("validate", {"program": "file"}, ctx)
    if not verdict.get("ok"):
        found = verdict.get("error") or "; ".join(
            f"{f['code']}: {f['message']}" for f in verdict.get("findings", ())
        )
        lines.append(f"{name}: QMK refuses it: {found}")
        return lines
    info = call("info", {"program": "file"}, ctx)
    if not info.get("ok"):
        lines.append(f"{name}: verifies; info: {_refused(info)}")
        return lines
    counts = info.get("counts", {})
    lines.append(
        f"{name}: verifies; {info.get('qubits')} qubits, {counts.get('total')} ops "
        f"({counts.get('t_gates')} T), {'Clifford' if info.get('clifford') else 'not Clifford'}"
    )
    plan = call("plan", {"program": "file"}, ctx)
    chosen = plan.get("chosen") or {}
    if not plan.get("ok"):
        lines.append(f"plan: {_refused(plan)}")
    elif chosen:
        lines.append(
            f"plan: {chosen.get('profile')} ({chosen.get('physical_qubits'):,} physical qubits, "
            f"{chosen.get('t_factories')} T factories) is the cheapest by "
            f"{plan.get('objective')}: run it with --profile {chosen.get('profile')}"
        )
    # the estimate of the variant the plan chose (QRE's single point is the fastest one,
    # often with more factories: its qubits are another choice's)
    variant = {k: chosen[k] for k in ("family", "distance", "t_factories") if k in chosen}
    cost = call("estimate", {"program": "file", **variant}, ctx)
    if cost.get("ok"):
        lines.append(
            f"estimate: {cost.get('physicalQubits'):,} physical qubits "
            f"({cost.get('tFactories')} T factories), runtime {cost.get('runtime_ns')} ns, "
            f"code distance {cost.get('codeDistance')}"
        )
    else:
        lines.append(f"estimate: {_refused(cost)}")
    return lines


def _refused(result: dict[str, object]) -> str:
    """A tool's refusal as a line: QMK refused it, its code and message."""
    return f"QMK refused it: {result.get('code')}: {result.get('error')}"
