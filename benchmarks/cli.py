"""CLI benchmark: `nnenergy predict` from process start to JSON, cold and warm.

Cold: a fresh cache folder (the predictor resolves through MLflow, the model is built and described
with TensorFlow). Warm: the same call again (the predictor from the local cache, the described layer
table from `<cache>/tables/`: no MLflow, no TensorFlow). For a keras.applications name and a
`.keras` file. Needs a registered predictor (`make run`).

    .venv/bin/python benchmarks/cli.py            # writes benchmarks/cli_results.json, prints Markdown
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def wall(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(REPO / ".venv/bin/nnenergy"), "predict", *args, "--json"], check=True,
                   capture_output=True, cwd=REPO, env=env)
    return time.perf_counter() - t0


def main() -> int:
    from nnenergy.measure.hardware import current_profile_name

    out = {"profile": current_profile_name(), "machine": f"{platform.processor() or platform.machine()}, "
                                                          f"{os.cpu_count()} cores"}
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = Path(tmp) / "mobilenetv2_160.keras"
        subprocess.run([sys.executable, "-c", "import keras; keras.applications.MobileNetV2(weights=None, "
                        f"input_shape=(160, 160, 3)).save({str(keras_file)!r})"], check=True, capture_output=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        for label, args in (("ResNet50 --batch-size 32", ["ResNet50", "--batch-size", "32"]),
                            ("a .keras file (MobileNetV2 160 px)", [str(keras_file), "--batch-size", "8"])):
            env = {**os.environ, "NNENERGY_CACHE": str(Path(tmp) / f"cache-{len(out)}")}
            cold = wall(args, env)
            warm = statistics.median(wall(args, env) for _ in range(3))
            out[label] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2)}
    (REPO / "benchmarks" / "cli_results.json").write_text(json.dumps(out, indent=1))
    print(f"`nnenergy predict ... --json`, process start to JSON, on {out['profile']} ({out['machine']}):\n")
    print("| model | cold (fresh cache) | warm (median of 3) |\n|---|---|---|")
    for k, v in out.items():
        if isinstance(v, dict):
            print(f"| {k} | {v['cold_s']:.1f} s | {v['warm_s']:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
