"""What a sweep measures, job by job: an architecture (a name or a file), its input size and batch
sizes; which of them earlier sessions left to do; which configurations are also isolated."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnenergy import arch
from nnenergy.arch import kernels, seqkernels
from nnenergy.measure.sweep_spec import SweepSpec
from nnenergy.schema import config_id, parse_config_id


def arch_name(arch: str) -> str:
    """A file's architecture name is its stem."""
    return Path(arch).stem if arch.endswith((".keras", ".h5")) else arch


@dataclass
class Job:
    arch: str  # a name or a file
    size: int | None  # None: the model decides (files, generated)
    batches: list[int]


def plan_jobs(spec: SweepSpec) -> list[Job]:
    """Every job of the sweep: named architectures (the grid, or a sample of it), files, generated
    architectures and kernels."""
    jobs: list[Job] = []
    grid = [(s, b) for s in spec.input_sizes for b in spec.batch_sizes]
    for name in spec.architectures:
        if spec.configs_per_architecture:
            rng = random.Random(f"{spec.seed}|{name}")
            picked = rng.sample(grid, min(spec.configs_per_architecture, len(grid)))
            for s in sorted({s for s, _ in picked}):
                jobs.append(Job(name, s, sorted(b for s2, b in picked if s2 == s)))
        else:
            jobs += [Job(name, s, list(spec.batch_sizes)) for s in spec.input_sizes]
    jobs += [Job(f, None, list(spec.batch_sizes)) for f in spec.model_files]
    jobs += _generated_jobs(spec) + _kernel_jobs(spec)
    if spec.shuffle:
        random.Random(spec.seed).shuffle(jobs)
    return jobs


def _generated_jobs(spec: SweepSpec) -> list[Job]:
    g = spec.generated
    names = []
    if g.seeds[1] > g.seeds[0] or g.variant_families:
        names = [arch.generated_name(s) for s in range(*g.seeds)
                 if not g.focus_kinds or arch.macro_kind(s) in g.focus_kinds]
        names += [arch.variant_name(f, s) for s in range(*g.variant_seeds) for f in g.variant_families]
        # A fixed shuffle: a sweep stopped part-way holds both kinds in proportion.
        random.Random(spec.seed).shuffle(names)
    out = []
    for name in names:
        # Batch sizes whose estimated pass lies within ~1 ms-1 s, spread over the range.
        rng = np.random.default_rng([spec.seed, zlib.crc32(name.encode())])
        batches = arch.sample_configs(arch.spec_from_name(name), rng, g.configs_per_architecture, g.batch_sizes)
        out.append(Job(name, None, sorted(set(batches))))
    return out


def _kernel_jobs(spec: SweepSpec) -> list[Job]:
    """Single kernels: `ker1_` seeds (`kernels`), then sequence kernels' `seq1_` seeds (`seqkernels`)."""
    g = spec.generated
    out = []
    for seeds, module, kind, name_of, sample in (
            (g.kernel_seeds, kernels, kernels.kernel_kind, kernels.kernel_name, kernels.sample_kernel_spec),
            (g.seq_kernel_seeds, seqkernels, seqkernels.seq_kernel_kind, seqkernels.seq_kernel_name,
             seqkernels.sample_seq_kernel_spec)):
        for seed in range(*seeds):
            if g.kernel_focus and kind(seed) not in g.kernel_focus:
                continue
            name = name_of(seed)
            rng = np.random.default_rng([spec.seed, zlib.crc32(name.encode())])
            batches = module.sample_batches(sample(seed), rng, g.configs_per_architecture, g.batch_sizes)
            out.append(Job(name, None, batches))
    return out


def pending_jobs(jobs: list[Job], done: set[str]) -> list[Job]:
    """The jobs less their configurations in `done` (config ids)."""
    # Files and generated models decide their own input size: match them by (name, batch).
    done_pairs = {(name, batch) for name, _, batch in map(parse_config_id, done)}
    pending = []
    for j in jobs:
        name = arch_name(j.arch)
        left = [b for b in j.batches
                if ((name, b) not in done_pairs if j.size is None else config_id(name, j.size, b) not in done)]
        if left:
            pending.append(Job(j.arch, j.size, left))
    return pending


def isolated(spec: SweepSpec, cid: str) -> bool:
    """Whether this configuration's layers are measured in isolation (a stable sample)."""
    share = spec.isolate_share
    return share >= 1.0 or (share > 0 and random.Random(f"{spec.seed}|{cid}").random() < share)
