"""Regenerates the notebooks. `make benchmark` (benchmarks/run.py, the command that refreshes the README's
figures) runs this and then executes them in place, so that their figures show on GitHub and read the
same store as the README's figures."""

from pathlib import Path

import nbformat as nbf

SETUP = """import os, json
from pathlib import Path
from nnenergy import dataset as ds
from nnenergy.analyze import figures
%matplotlib inline
# NNENERGY_DATASET points at any measured folder; by default the first release's dataset, whose
# configurations were all also measured layer by layer in isolation.
DATA = Path(os.environ.get("NNENERGY_DATASET", Path.cwd().parent / "data" / "intel-xeon-avx512-2c" / "cpu"))
d = ds.load(DATA)
models, layers = d.models, d.layers
print(os.path.relpath(DATA, Path.cwd().parent), len(models), "configurations,", len(layers), "layer rows, hardware",
      d.hardware_id)"""

BOOKS = {
    "01_dataset.ipynb": [
        ("md", "# The measured dataset\nWhat was measured, on which hardware and how: one row per whole-model "
               "configuration (architecture × input size × batch size) and one per layer occurrence."),
        ("code", SETUP),
        ("code", "models[['hardware_id','cpu_model','cpu_measurement','ram_measurement','gpu_measurement']].drop_duplicates()"),
        ("md", "`cpu_load_estimate` means CodeCarbon had no RAPL counter and *estimated* CPU power from load; "
               "RAM power is an estimate from memory size. Energy is then proportional to wall time."),
        ("code", "fig, m = figures.energy_distribution(models); m"),
        ("md", "Whole-model energies span orders of magnitude, which is why errors are reported as percentages (RMSPE)."),
        ("code", "fig, m = figures.layer_type_counts(layers); m"),
        ("code", "fig, m = figures.energy_by_kind(layers); m"),
        ("md", "Per-kind energy of isolated layers: convolutions dominate, but the per-call floor makes small layers "
               "cost about the same whatever they compute."),
        ("code", "fig, m = figures.noise_vs_window(models, layers); m"),
        ("md", "Longer windows give smaller spreads; the noise floor bounds any predictor's achievable error."),
    ],
    "02_flops.ipynb": [
        ("md", "# FLOPs versus energy\nHow far does the analytic FLOP count alone predict energy?"),
        ("code", SETUP),
        ("code", "fig, corr = figures.flops_vs_energy(models); corr"),
        ("code", "print('best FLOPs-only fit, RMSPE on held-out families: %.1f%%' % figures.flops_only_heldout_rmspe(models, 5))"),
        ("md", "A log-linear fit on FLOPs and batch size, evaluated on architecture families it never saw, in the 5 "
               "grouped folds of the predictors' level 1 (and of `nnenergy analyze`), so it compares with the "
               "layer-wise predictors' held-out RMSPE in the README and docs/history.md (3 folds gave 43.7%)."),
        ("code", "dense = Path(os.environ.get('NNENERGY_DENSE_DATASET', DATA.parent / 'dense'))\n"
                 "if (dense / 'models.parquet').exists():\n"
                 "    fig, c = figures.flops_vs_energy(ds.load(dense).models, 'Dense-only models'); print(c)\n"
                 "else:\n    print('no Dense-only dataset at', dense)"),
        ("md", "Even for models made only of Dense layers, FLOPs and energy are not perfectly correlated."),
    ],
    "03_additivity.ipynb": [
        ("md", "# Layer additivity\nIs a model's energy the sum of its layers measured in isolation?"),
        ("code", SETUP),
        ("code", "fig, m = figures.additivity(models); m"),
        ("md", "Factors far below 1 mean isolated layers overestimate (each isolated call pays a fixed overhead, and "
               "fused kernels in the whole graph are cheaper than their parts). In-context attribution instead splits "
               "the measured whole-model energy by profiled op time, so it adds up by construction:"),
        ("code", "models[['wall_over_op_time']].describe()"),
        ("code", "models.groupby('family')[['additivity','additivity_overhead_corrected']].median().sort_values('additivity')"),
    ],
    "04_predictors.ipynb": [
        ("md", "# Predictor comparison\nHeld-out results of the newest `make run` (the newest multirun parent and "
               "its children) in the MLflow store; every run when there is no multirun."),
        ("code", "import os, warnings\n"
                 "warnings.filterwarnings('ignore', message='IProgress not found')  # tqdm without Jupyter widgets\n"
                 "import mlflow\n"
                 "from IPython.display import Markdown, display\n"
                 "mlflow.set_tracking_uri(os.environ.get('MLFLOW_TRACKING_URI', 'sqlite:///../mlflow.db'))\n"
                 "exp = mlflow.get_experiment_by_name('nnenergy-train')\n"
                 "runs = mlflow.search_runs([exp.experiment_id]) if exp else None\n"
                 "if runs is not None and 'tags.nnenergy.sweep' in runs and (runs['tags.nnenergy.sweep'] == 'parent').any():\n"
                 "    parent = runs[runs['tags.nnenergy.sweep'] == 'parent'].sort_values('start_time').iloc[-1]\n"
                 "    runs = runs[runs['tags.mlflow.parentRunId'] == parent['run_id']]\n"
                 "    display(Markdown(parent.get('tags.mlflow.note.content') or ''))  # the comparison, registry aliases marked\n"
                 "cols = ['tags.predictor', 'tags.profile', 'metrics.L1_rmspe', 'metrics.L1_within10', 'metrics.L2_rmspe',\n"
                 "        'metrics.L2_within10', 'metrics.L3_rmspe', 'metrics.L3_within10', 'metrics.score']\n"
                 "table = runs[[c for c in cols if c in runs]].dropna(subset=['tags.predictor']) if runs is not None and len(runs) else None\n"
                 "table"),
        ("code", "import matplotlib.pyplot as plt\n"
                 "if table is not None and len(table):\n"
                 "    t = table.set_index('tags.predictor')[[c for c in table if c.startswith('metrics.') and 'rmspe' in c]]\n"
                 "    ax = t.plot.bar(figsize=(8, 3.5), rot=0, ylabel='whole-model energy RMSPE (%)', title='Held-out error by level')\n"
                 "    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), frameon=False)\n"
                 "    plt.tight_layout(); plt.show()"),
        ("md", "Level 1 (`L1_*`): real architecture families held out together with their generated variants; "
               "level 2 (`L2_*`): published architectures never trained on; level 3 (`L3_*`): generated "
               "architectures held out by seed. `score`: mean of levels 1 and 3 (level 2 never selects). "
               "The report's best was 12.26% RMSPE (split by model, not family)."),
    ],
}

for name, cells in BOOKS.items():
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    nbf.write(nb, Path(__file__).parent / name)
