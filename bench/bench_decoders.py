"""Check: QMK's decoders against sinter.collect on stim's colour codes (not a timing).

For each distance, stim's ``color_code:memory_xyz`` circuit at p (all four of its
noise rates) runs on QMK's stim target with ``decoder`` ``bposd`` (seeded) and with
``pymatching``, and through ``sinter.collect`` (unseeded, one worker) with three
decoders: ``pymatching``, stimbposd's ``bposd`` at QMK's BP+OSD settings, and QMK's
own BP+OSD as sinter's custom decoder. Each QMK count is compared with its sinter
peer by a two-proportion z test (|z| < 3.29 is alpha 1e-3). Results go to
``bench/results/decoders.json``; docs/frontends.md quotes them.

    python bench/bench_decoders.py [--shots 20000] [--distances 3 5 7] [--p 0.005]
        [--decoders pymatching bposd] [--out decoders.json]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import sinter
import stim
from stimbposd import SinterDecoder_BPOSD

import qmk
from _common import RESULTS, load_averages, machine, write_json
from qmk.experiments.decoders import BPOSD_SETTINGS, BpOsd

SEED = 78


class QMKBpOsd(sinter.Decoder):
    """QMK's BP+OSD behind sinter's custom-decoder interface."""

    def compile_decoder_for_dem(self, *, dem: stim.DetectorErrorModel) -> sinter.CompiledDecoder:
        decoder = BpOsd(dem)

        class Compiled(sinter.CompiledDecoder):
            def decode_shots_bit_packed(self, *, bit_packed_detection_event_data: Any) -> Any:
                return decoder.decode_batch(
                    bit_packed_detection_event_data,
                    bit_packed_shots=True,
                    bit_packed_predictions=True,
                )

        return Compiled()


def z_score(a: int, n: int, b: int, m: int) -> float:
    """The two-proportion z of a/n against b/m (pooled)."""
    pooled = (a + b) / (n + m)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m)) or 1.0
    return (a / n - b / m) / spread


def circuit(distance: int, p: float) -> stim.Circuit:
    return stim.Circuit.generated(
        "color_code:memory_xyz",
        distance=distance,
        rounds=distance,
        after_clifford_depolarization=p,
        before_measure_flip_probability=p,
        after_reset_flip_probability=p,
    )


def row(distance: int, p: float, shots: int, decoders: list[str]) -> dict[str, Any]:
    c = circuit(distance, p)
    out: dict[str, Any] = {"distance": distance, "p": p, "shots": shots, "seed": SEED}
    s = BPOSD_SETTINGS["bposd"]
    peers = {
        "pymatching": ("pymatching", {}),
        "bposd": (
            "stimbposd",
            {
                "stimbposd": SinterDecoder_BPOSD(
                    max_bp_iters=s["max_iter"],
                    bp_method=s["bp_method"],
                    osd_method=s["osd_method"],
                    osd_order=s["osd_order"],
                ),
                "qmk-bposd": QMKBpOsd(),
            },
        ),
    }
    for name in decoders:
        peer, custom = peers[name]
        began = time.perf_counter()
        decoded = qmk.run(c, shots=shots, seed=SEED, target_options={"decoder": name}).details[
            "decode"
        ]
        ours = decoded["logical_errors"][0]
        seconds = time.perf_counter() - began
        out[name] = {"model": decoded["model"], "errors": ours, "seconds": seconds}
        names = [peer] + (["qmk-bposd"] if name == "bposd" else [])
        for sinter_name in names:
            began = time.perf_counter()
            (stats,) = sinter.collect(
                num_workers=1,
                tasks=[sinter.Task(circuit=c)],
                decoders=[sinter_name],
                custom_decoders=custom or None,
                max_shots=shots,
                max_errors=shots,
            )
            out[name][f"sinter:{sinter_name}"] = {
                "errors": stats.errors,
                "shots": stats.shots,
                "z": z_score(ours, shots, stats.errors, stats.shots),
                "seconds": time.perf_counter() - began,
            }
        print(distance, name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=20_000)
    parser.add_argument("--distances", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--p", type=float, default=0.005)
    parser.add_argument(
        "--decoders", nargs="+", choices=["pymatching", "bposd"], default=["pymatching", "bposd"]
    )
    parser.add_argument("--out", default="decoders.json", help="file name under bench/results")
    args = parser.parse_args()
    rows = [row(d, args.p, args.shots, args.decoders) for d in args.distances]
    write_json(
        {"machine": machine(), "load": load_averages(), "rows": rows},
        RESULTS / args.out,
    )


if __name__ == "__main__":
    main()
