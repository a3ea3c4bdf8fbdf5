"""CLI benchmark: `nnenergy predict` from process start to JSON, cold and warm, with and without a server.

Cold: a fresh cache folder (the predictor resolves through MLflow, the model is built and described
with TensorFlow). Warm: the same call again (the predictor from the local cache, the described layer
table from `<cache>/tables/`: no MLflow, no TensorFlow). Server: a fresh cache folder with
`nnenergy serve --detach` started first (its start is timed apart), then the first call of a model
it never described, and that call again. For a keras.applications name and a `.keras` file. Needs a
registered predictor (`make run`).

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


NNENERGY = str(REPO / ".venv/bin/nnenergy")


def wall(args: list[str], env: dict, cmd: str = "predict") -> float:
    t0 = time.perf_counter()
    extra = ["--json"] if cmd == "predict" else []
    subprocess.run([NNENERGY, cmd, *args, *extra], check=True, capture_output=True, cwd=REPO, env=env)
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
            env = {**os.environ, "NNENERGY_CACHE": str(Path(tmp) / f"cache-{len(out)}"), "NNENERGY_SERVER": "off"}
            cold = wall(args, env)
            warm = statistics.median(wall(args, env) for _ in range(3))
            env = {**os.environ, "NNENERGY_CACHE": str(Path(tmp) / f"cache-server-{len(out)}")}
            env.pop("NNENERGY_SERVER", None)
            start = wall(["--detach"], env, "serve")
            try:
                first = wall(args, env)
                again = statistics.median(wall(args, env) for _ in range(3))
            finally:
                wall(["--stop"], env, "serve")
            out[label] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2), "server_start_s": round(start, 2),
                          "server_first_s": round(first, 2), "server_again_s": round(again, 2)}
    (REPO / "benchmarks" / "cli_results.json").write_text(json.dumps(out, indent=1))
    print(f"`nnenergy predict ... --json`, process start to JSON, on {out['profile']} ({out['machine']}):\n")
    print("| model | no server: first call (fresh cache) | no server: again (median of 3) | "
          "`nnenergy serve` running: first call | with it: again (median of 3) |\n|---|---|---|---|---|")
    for k, v in out.items():
        if isinstance(v, dict):
            print(f"| {k} | {v['cold_s']:.1f} s | {v['warm_s']:.1f} s | {v['server_first_s']:.1f} s "
                  f"| {v['server_again_s']:.1f} s |")
    starts = [v["server_start_s"] for v in out.values() if isinstance(v, dict)]
    print(f"\n(`nnenergy serve --detach` itself: {min(starts):.1f}-{max(starts):.1f} s, once.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
