"""Model-wise predictors in PyTorch: an MLP on whole-model features, and recurrent networks
over the sequence of per-layer feature vectors (plain, or with learned layer-type embeddings).

Targets are log energy and log latency, standardised: whole-model energies span three orders
of magnitude, the metric is relative (RMSPE), and an error in log space is a relative error.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from nnenergy.features.layer_features import ALL_FEATURES, LAYER_KINDS, NEWER_FEATURES
from nnenergy.schema import TARGETS

_KIND_VOCAB = ["<unk>", *LAYER_KINDS, "other"]
_FLOP_BINS = np.linspace(0, 30, 9)  # log1p(FLOPs) histogram edges

def model_features(feats: pd.DataFrame) -> pd.DataFrame:
    """Whole-model vector per configuration: totals, per-kind counts and FLOPs shares, a FLOPs histogram."""
    g = feats.groupby("config_id", sort=True)
    out = pd.DataFrame(index=g.size().index)
    out["log_batch"] = np.log(g["batch_size"].first())
    out["in_h"] = g["in_h"].first()
    out["log_n_layers"] = np.log(g.size())
    for col in ("flops", "params", "mem_bytes", "in_elems", "out_elems"):
        out[f"log_total_{col}"] = np.log1p(g[f"log_{col}"].apply(lambda s: np.expm1(s).sum()))
    flops = np.expm1(feats["log_flops"])
    total = flops.groupby(feats["config_id"]).sum().replace(0, 1)
    for kind in _KIND_VOCAB[1:]:
        mask = feats["kind"] == kind
        out[f"count_{kind}"] = np.log1p(mask.groupby(feats["config_id"]).sum())
        out[f"flops_share_{kind}"] = (flops.where(mask, 0).groupby(feats["config_id"]).sum() / total)
    hist = feats.groupby("config_id")["log_flops"].apply(lambda s: np.histogram(s, _FLOP_BINS)[0] / max(len(s), 1))
    for i in range(len(_FLOP_BINS) - 1):
        out[f"flops_hist_{i}"] = hist.map(lambda h: h[i])
    return out.fillna(0.0)

class MLPNet(nn.Module):
    def __init__(self, n_in: int, hidden: int, depth: int, dropout: float):
        super().__init__()
        layers, d = [], n_in
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden
        self.net = nn.Sequential(*layers, nn.Linear(d, 2))

    def forward(self, x, *_):
        return self.net(x)

class RNNNet(nn.Module):
    """GRU over layers; `embed_dim > 0` replaces the one-hot kind with learned embeddings of kind and type."""

    def __init__(self, n_num: int, n_kinds: int, n_types: int, hidden: int, embed_dim: int, dropout: float):
        super().__init__()
        self.embed_dim = embed_dim
        if embed_dim:
            self.kind_emb = nn.Embedding(n_kinds, embed_dim)
            self.type_emb = nn.Embedding(n_types, embed_dim)
            step = n_num + 2 * embed_dim
        else:
            self.n_kinds = n_kinds
            step = n_num + n_kinds
        self.gru = nn.GRU(step, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 2))

    def forward(self, batch_feat, num, kinds, types, lengths):
        if self.embed_dim:
            x = torch.cat([num, self.kind_emb(kinds), self.type_emb(types)], dim=-1)
        else:
            x = torch.cat([num, nn.functional.one_hot(kinds, self.n_kinds).float()], dim=-1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.head(torch.cat([h[-1], batch_feat], dim=-1))

@dataclass
class ModelwisePredictor:
    arch: str = "mlp"  # mlp | rnn | embedded_rnn
    hidden: int = 64
    depth: int = 2
    embed_dim: int = 8
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 200
    patience: int = 20
    batch_size: int = 16
    val_fraction: float = 0.2
    seed: int = 0
    chunk: int = 8  # RNNs: consecutive layers averaged into one step (a GRU step costs ~1 ms on CPU)
    device: str = "auto"
    history_: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    # -- data ----------------------------------------------------------------------
    def _device(self):
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _tensors(self, feats: pd.DataFrame, ids: list[str]):
        if self.arch == "mlp":
            x = model_features(feats).loc[ids].to_numpy(float)
            return [torch.tensor((x - self.x_mean_) / self.x_std_, dtype=torch.float32)]
        seqs, kinds, types, lengths, bfeat = [], [], [], [], []
        by_id = {cid: g.sort_values("layer_index") for cid, g in feats.groupby("config_id")}
        for cid in ids:
            g = by_id[cid]
            num = (g[self._features()].to_numpy(float) - self.x_mean_) / self.x_std_
            k_ids = np.array([self.kind_index_.get(k, 0) for k in g["kind"]])
            t_ids = np.array([self.type_index_.get(t, 0) for t in g["layer_type"]])
            # Each step: the mean of `chunk` consecutive layers, tokens of its costliest layer.
            starts = np.arange(0, len(g), self.chunk)
            heavy = [s + int(np.argmax(g["log_flops"].to_numpy()[s:s + self.chunk])) for s in starts]
            num = np.add.reduceat(num, starts, axis=0) / np.diff(np.append(starts, len(g)))[:, None]
            seqs.append(torch.tensor(num, dtype=torch.float32))
            kinds.append(torch.tensor(k_ids[heavy]))
            types.append(torch.tensor(t_ids[heavy]))
            lengths.append(len(starts))
            bfeat.append([np.log(g["batch_size"].iloc[0])])
        return [torch.tensor(bfeat, dtype=torch.float32), pad_sequence(seqs, batch_first=True),
                pad_sequence(kinds, batch_first=True), pad_sequence(types, batch_first=True), torch.tensor(lengths)]

    def _features(self) -> list[str]:
        """The per-layer columns it was trained on (pickled before they were stored: those of that time)."""
        return getattr(self, "features_", None) or [f for f in ALL_FEATURES if f not in NEWER_FEATURES]

    def _net(self, n_in: int) -> nn.Module:
        if self.arch == "mlp":
            return MLPNet(n_in, self.hidden, self.depth, self.dropout)
        embed = self.embed_dim if self.arch == "embedded_rnn" else 0
        return RNNNet(n_in, len(_KIND_VOCAB), len(self.type_index_) + 1, self.hidden, embed, self.dropout)

    # -- fit / predict -------------------------------------------------------------
    def fit(self, feats: pd.DataFrame, layer_targets=None, models: pd.DataFrame | None = None) -> "ModelwisePredictor":
        """Learns whole-model targets from `models`; per-layer targets are not used."""
        self.metadata["layer_types"] = sorted(set(feats["layer_type"]))
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        fams = np.array(sorted(models["family"].unique()))
        n_val = max(1, int(round(len(fams) * self.val_fraction))) if len(fams) > 2 else 0
        val_fams = set(rng.choice(fams, n_val, replace=False)) if n_val else set()
        tr_ids = sorted(models.loc[~models["family"].isin(val_fams), "config_id"])
        va_ids = sorted(models.loc[models["family"].isin(val_fams), "config_id"]) or tr_ids
        self.kind_index_ = {k: i for i, k in enumerate(_KIND_VOCAB)}
        self.type_index_ = {t: i + 1 for i, t in enumerate(sorted(feats["layer_type"].unique()))}
        tr_feats = feats[feats["config_id"].isin(tr_ids)]
        self.features_ = list(ALL_FEATURES)  # as trained, whatever the extractor adds later
        x = model_features(tr_feats).to_numpy(float) if self.arch == "mlp" else tr_feats[self.features_].to_numpy(float)
        self.x_mean_, self.x_std_ = x.mean(0), x.std(0) + 1e-6
        y = np.log(models.set_index("config_id")[list(TARGETS)].astype(float))
        self.y_mean_, self.y_std_ = y.loc[tr_ids].to_numpy().mean(0), y.loc[tr_ids].to_numpy().std(0) + 1e-6
        self.y_range_ = (y.loc[tr_ids].to_numpy().min(0) - 2.0, y.loc[tr_ids].to_numpy().max(0) + 2.0)
        dev = self._device()
        xt = [t.to(dev) for t in self._tensors(feats, tr_ids)]
        xv = [t.to(dev) for t in self._tensors(feats, va_ids)]
        yt = torch.tensor((y.loc[tr_ids].to_numpy() - self.y_mean_) / self.y_std_, dtype=torch.float32, device=dev)
        yv = torch.tensor((y.loc[va_ids].to_numpy() - self.y_mean_) / self.y_std_, dtype=torch.float32, device=dev)
        n_in = xt[0].shape[1] if self.arch == "mlp" else xt[1].shape[2]
        self.net_ = self._net(n_in).to(dev)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, bad = float("inf"), None, 0
        self.history_ = []
        t0 = time.perf_counter()
        for epoch in range(self.epochs):
            self.net_.train()
            perm = torch.randperm(len(yt), device=dev)
            losses = []
            for i in range(0, len(perm), self.batch_size):
                idx = perm[i:i + self.batch_size]
                opt.zero_grad()
                loss = nn.functional.mse_loss(self.net_(*[t[idx] for t in xt]), yt[idx])
                loss.backward()
                opt.step()
                losses.append(loss.item())
            self.net_.eval()
            with torch.no_grad():
                val = nn.functional.mse_loss(self.net_(*xv), yv).item()
            self.history_.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val})
            if val < best - 1e-5:
                best, best_state, bad = val, copy.deepcopy(self.net_.state_dict()), 0
            else:
                bad += 1
                if bad >= self.patience:
                    break
        self.net_.load_state_dict(best_state)
        self.net_.cpu()
        self.metadata["fit_seconds"] = time.perf_counter() - t0
        self.metadata["epochs_run"] = len(self.history_)
        return self

    def predict(self, feats: pd.DataFrame) -> pd.DataFrame:
        ids = sorted(feats["config_id"].unique())
        self.net_.eval()
        with torch.no_grad():
            out = self.net_(*self._tensors(feats, ids)).numpy()
        # Bounded to a band around the training targets: an unseen family must not overflow.
        logp = np.clip(out * self.y_std_ + self.y_mean_, *self.y_range_)
        pred = np.exp(logp)
        from nnenergy.learn.layerwise import energy_interval

        out = pd.DataFrame({"config_id": ids, "energy_j": pred[:, 0], "latency_s": pred[:, 1]})
        out["energy_lo_j"], out["energy_hi_j"] = energy_interval(self.metadata, out["energy_j"])
        return out

    predict_whole = predict
