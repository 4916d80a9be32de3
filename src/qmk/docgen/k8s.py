"""The Kubernetes manifests of ``deploy/k8s/``: the Helm chart ``deploy/helm/qmk``
rendered with its default values, one file per template, for ``kubectl apply -f`` where
Helm is not used. Rendered offline by Helm's own Go code through the ``helm-python-sdk``
binding (no ``helm`` binary, no cluster), and drift-checked like the generated pages::

    python -m qmk.docgen.k8s --check    # exit 1 (one line per file) when one drifted
    python -m qmk.docgen.k8s --write    # render them again

The chart carries a copy of the alert rules, ``files/qmk-alerts.yml`` (its
PrometheusRule), checked and written with the manifests from ``deploy/prometheus/``.
Run from the repository root (``--chart``, ``--out`` and ``--rules`` name other places).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

#: The release name and namespace the committed manifests are rendered for.
RELEASE = "qmk"
NAMESPACE = "qmk"
#: The command that brings the files up to date.
REGENERATE = "python -m qmk.docgen.k8s --write"
#: The first lines of every rendered file.
HEADER = (
    "# Generated from the Helm chart deploy/helm/qmk (release {release}, default values) by\n"
    "# python -m qmk.docgen.k8s --write: edit the chart, not this file.\n"
)


def render(chart: Path, *, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """The chart's manifests with its default values: file name -> text (templates that
    render to nothing are left out).

    Raises:
        ImportError: helm-python-sdk is not installed (the test extra has it).
    """
    import helm_python as helm

    helm.enable_logging(logging.WARNING)  # the loader's notes stay out of the output
    rendered = helm.Chart.load(chart).render(name=release, namespace=namespace)
    files = {}
    for template, text in sorted(rendered.items()):
        body = text.strip()
        if not body or not template.endswith((".yaml", ".yml")):
            continue
        files[Path(template).name] = HEADER.format(release=release) + body + "\n"
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qmk.docgen.k8s (--check | --write) [--chart DIR] [--out DIR]``.

    Returns:
        The exit status: 0; 1 when ``--check`` finds a file out of date (one line each);
        2 when the chart cannot be rendered.
    """
    parser = argparse.ArgumentParser(
        prog="python -m qmk.docgen.k8s",
        description="Render the Helm chart into the committed Kubernetes manifests.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if a manifest is stale")
    mode.add_argument("--write", action="store_true", help="render the manifests in place")
    parser.add_argument("--chart", type=Path, default=Path("deploy/helm/qmk"))
    parser.add_argument("--out", type=Path, default=Path("deploy/k8s"))
    parser.add_argument("--rules", type=Path, default=Path("deploy/prometheus/qmk-alerts.yml"))
    options = parser.parse_args(argv)
    rules, copy = options.rules, options.chart / "files" / options.rules.name
    rules_text = rules.read_text(encoding="utf-8")
    if not copy.is_file() or copy.read_text(encoding="utf-8") != rules_text:
        if not options.write:
            print(f"{copy} is not a copy of {rules}; run: {REGENERATE}", file=sys.stderr)
            return 1
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(rules_text, encoding="utf-8")
    try:
        files = render(options.chart)
    except ImportError:
        print("helm-python-sdk is not installed: pip install helm-python-sdk", file=sys.stderr)
        return 2
    except Exception as exc:  # the binding's errors: a chart that does not render
        print(f"{options.chart}: {exc}", file=sys.stderr)
        return 2
    out: Path = options.out
    stale = sorted(
        name
        for name, text in files.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    )
    extra = (
        sorted(p.name for p in out.glob("*.yaml") if p.name not in files) if out.is_dir() else []
    )
    if options.write:
        out.mkdir(parents=True, exist_ok=True)
        for name in stale:
            (out / name).write_text(files[name], encoding="utf-8")
        for name in extra:
            (out / name).unlink()
        return 0
    for name in stale:
        print(
            f"{out / name} is out of date with {options.chart}; run: "
            "python -m qmk.docgen.k8s --write",
            file=sys.stderr,
        )
    for name in extra:
        print(
            f"{out / name} is rendered from no template of {options.chart}; run: "
            "python -m qmk.docgen.k8s --write",
            file=sys.stderr,
        )
    return 1 if stale or extra else 0


if __name__ == "__main__":
    sys.exit(main())
