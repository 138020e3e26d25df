#!/usr/bin/python3
"""PyTorch twin of taep's learned score network and its weight file (docs/physics.md section 7,
include/taep/mlp.hpp).

Network: input [x (d), emb(t) (E)] -> Linear + SiLU for each hidden width -> Linear(d).
    emb(t) = [sin(a f_0..f_{E/2-1}), cos(a f_0..f_{E/2-1})],  a = time_scale * t,
    f_i    = exp(-ln(max_period) i / (E/2)),  i = 0..E/2-1.
The output is the score s(x, t), or an eps-prediction with s = -eps / sqrt(1 - abar(t)) (VP schedule,
beta_min 0.1, beta_max 20), as `parameterization` says. The Linear layers live in `model.layers`, so
the state_dict names are exactly the file's tensor names layers.<i>.weight [out, in], layers.<i>.bias.

Weight file: safetensors, written and read here in pure Python (torch + numpy, no `safetensors`
package): 8-byte little-endian header length N, N bytes of JSON header (padded with spaces to a
multiple of 8), then the raw little-endian tensor bytes. Metadata (all values strings):
"taep.format" = "mlp-score-v1", "dim", "embedding_dim", "time_scale", "max_period",
"parameterization" ("score" | "eps"), "activation" ("silu").

Defaults and why:
- embedding_dim 16, max_period 1e4: the usual transformer/DDPM embedding with 8 frequencies.
- time_scale 100: the 8 angular frequencies a f_i then span 100 down to 0.03 rad per unit t, so
  the embedding resolves t to ~0.01 (the ring's score changes fastest at small t) while its slow
  components are nearly linear in t over [1e-3, 1]. Score-SDE code often uses ~1000 (t read like a
  DDPM step index); on the ring (DSM, Adam 1e-3, batch 2048, 6000 steps, one seed each) the
  score-matching loss of docs/physics.md eq. 33 came out 0.097 with 100, 0.163 with 1000 and 0.357 with
  1 (with 1 all frequencies are <= 1 rad per unit t and the embedding is nearly constant/linear).
  The C++ struct's default (1.0) only matters for files without the key, which the loader rejects.
- hidden (128, 128, 128), SiLU: the paper's network.

Usage as a module (run with /usr/bin/python3, which has numpy and Debian's python3-torch):
    from taep_mlp import TaepScoreMLP, export_safetensors, load_safetensors
CLI:
    /usr/bin/python3 tools/taep_mlp.py info FILE            # metadata, tensors, a sample evaluation
    /usr/bin/python3 tools/taep_mlp.py export --help        # random-init model -> safetensors
"""
import argparse
import json
import math
import struct

import numpy as np
import torch
from torch import nn

FORMAT = "mlp-score-v1"
BETA_MIN, BETA_MAX = 0.1, 20.0

# safetensors dtype name -> (numpy little-endian storage dtype, torch dtype).
_DTYPES = {
    "F32": ("<f4", torch.float32),
    "F16": ("<f2", torch.float16),
    "BF16": ("<u2", torch.bfloat16),  # raw bits; numpy has no bfloat16
}


def beta(t, beta_min=BETA_MIN, beta_max=BETA_MAX):
    return beta_min + t * (beta_max - beta_min)


def abar(t, beta_min=BETA_MIN, beta_max=BETA_MAX):
    """abar(t) = exp(-(beta_min t + 1/2 (beta_max - beta_min) t^2)); t a float or a tensor."""
    e = -(beta_min * t + 0.5 * (beta_max - beta_min) * t * t)
    return torch.exp(e) if torch.is_tensor(e) else math.exp(e)


class TaepScoreMLP(nn.Module):
    """s_theta(x, t) of docs/physics.md section 7. forward() returns the raw output (score or eps)."""

    def __init__(self, dim, hidden=(128, 128, 128), embedding_dim=16, time_scale=100.0,
                 max_period=10000.0, parameterization="score", activation="silu",
                 beta_min=BETA_MIN, beta_max=BETA_MAX):
        super().__init__()
        if dim < 1:
            raise ValueError("dim must be >= 1")
        if embedding_dim < 2 or embedding_dim % 2:
            raise ValueError("embedding_dim must be even and >= 2")
        if parameterization not in ("score", "eps"):
            raise ValueError("parameterization must be 'score' or 'eps'")
        if activation != "silu":
            raise ValueError("only activation 'silu' is supported")
        self.dim = int(dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.embedding_dim = int(embedding_dim)
        self.time_scale = float(time_scale)
        self.max_period = float(max_period)
        self.parameterization = parameterization
        self.activation = activation
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        widths = [self.dim + self.embedding_dim, *self.hidden, self.dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        half = self.embedding_dim // 2
        # Frequencies in float64 (like the C++ code), cast with the inputs in embed().
        self.register_buffer("freqs", torch.exp(-math.log(self.max_period)
                                                * torch.arange(half, dtype=torch.float64) / half),
                             persistent=False)

    def embed(self, t, n=None, dtype=None, device=None):
        """emb(t), shape (n, E). t: float or tensor of shape () / (n,) / (n, 1). The angle a f_i is
        formed in float64 and only the sin/cos are cast to the working dtype."""
        dtype = dtype or self.layers[0].weight.dtype
        device = device or self.layers[0].weight.device
        t = torch.as_tensor(t, dtype=torch.float64, device=device).reshape(-1, 1)
        arg = self.time_scale * t * self.freqs.to(device)[None, :]
        emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(dtype)
        if n is not None and emb.shape[0] == 1:
            emb = emb.expand(n, -1)
        return emb

    def forward(self, x, t):
        """Raw network output for x (n, d) at t (scalar or (n,) tensor)."""
        h = torch.cat([x, self.embed(t, x.shape[0], x.dtype, x.device)], dim=1)
        for layer in self.layers[:-1]:
            h = torch.nn.functional.silu(layer(h))
        return self.layers[-1](h)

    def output_to_score_factor(self, t, dtype=torch.float64):
        """Factor c(t) with score = c(t) * output: 1, or -1/sqrt(1 - abar(t)) for eps models."""
        if self.parameterization == "score":
            return 1.0 if not torch.is_tensor(t) else torch.ones_like(torch.as_tensor(t, dtype=dtype))
        ab = abar(torch.as_tensor(t, dtype=torch.float64), self.beta_min, self.beta_max)
        return (-1.0 / torch.sqrt(1.0 - ab)).to(dtype)

    def score(self, x, t):
        """The score s_theta(x, t) whatever the parameterization."""
        out = self.forward(x, t)
        if self.parameterization == "score":
            return out
        c = self.output_to_score_factor(t, x.dtype)
        c = c.reshape(-1, 1) if torch.is_tensor(c) and c.dim() > 0 else c
        return out * c

    def metadata(self):
        return {
            "taep.format": FORMAT,
            "dim": str(self.dim),
            "embedding_dim": str(self.embedding_dim),
            "time_scale": repr(self.time_scale),
            "max_period": repr(self.max_period),
            "parameterization": self.parameterization,
            "activation": self.activation,
        }


# ---------------------------------------------------------------------------------------------
# safetensors, pure Python


def write_safetensors(path, tensors, metadata=None):
    """tensors: ordered {name: (safetensors dtype, torch or numpy array)}; metadata: {str: str}.
    Writes tensors contiguously in the given order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("safetensors metadata keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    for name, (dt, arr) in tensors.items():
        np_dtype, torch_dtype = _DTYPES[dt]
        if torch.is_tensor(arr):
            t = arr.detach().cpu().contiguous().to(torch_dtype)
            if dt == "BF16":  # round-to-nearest-even by torch, then the raw 16 bits
                a = t.view(torch.int16).numpy().astype("<i2").view("<u2")
            else:
                a = t.numpy().astype(np_dtype)
        else:
            if dt == "BF16":
                raise TypeError("BF16 needs a torch tensor")
            a = np.ascontiguousarray(arr).astype(np_dtype)
        data = a.tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (metadata dict, {name: (dtype string, torch.float32 tensor)}), checking the layout."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        dt, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        np_dtype, _ = _DTYPES[dt]
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * np.dtype(np_dtype).itemsize:
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {b}, {e}")
        a = np.frombuffer(data[b:e], dtype=np_dtype).reshape(shape)
        if dt == "BF16":
            a32 = (a.astype(np.uint32) << 16).view(np.float32)
        else:
            a32 = a.astype(np.float32)
        tensors[name] = (dt, torch.from_numpy(a32.copy()))
    return metadata, tensors


def export_safetensors(model, path, dtype="F32"):
    """Writes `model` (a TaepScoreMLP) with its tensors stored as dtype "F32", "F16" or "BF16"."""
    if dtype not in _DTYPES:
        raise ValueError("dtype must be F32, F16 or BF16")
    tensors = {}
    for i, layer in enumerate(model.layers):
        tensors[f"layers.{i}.weight"] = (dtype, layer.weight.detach().float())
        tensors[f"layers.{i}.bias"] = (dtype, layer.bias.detach().float())
    write_safetensors(path, tensors, model.metadata())


def load_safetensors(path):
    """Builds a float32 TaepScoreMLP from a weight file written in the mlp-score-v1 convention."""
    meta, tensors = read_safetensors(path)
    if meta.get("taep.format") != FORMAT:
        raise ValueError(f"{path}: metadata taep.format is {meta.get('taep.format')!r}, "
                         f"expected {FORMAT!r}")
    for key in ("dim", "embedding_dim", "time_scale", "max_period", "parameterization", "activation"):
        if key not in meta:
            raise ValueError(f"{path}: metadata key {key!r} missing")
    n_layers = 0
    while f"layers.{n_layers}.weight" in tensors:
        n_layers += 1
    if n_layers < 1:
        raise ValueError(f"{path}: no layers.0.weight")
    widths = [tensors[f"layers.{i}.weight"][1].shape[0] for i in range(n_layers)]
    dim, emb = int(meta["dim"]), int(meta["embedding_dim"])
    model = TaepScoreMLP(dim, hidden=widths[:-1], embedding_dim=emb,
                         time_scale=float(meta["time_scale"]), max_period=float(meta["max_period"]),
                         parameterization=meta["parameterization"], activation=meta["activation"])
    state = {}
    for i in range(n_layers):
        for kind in ("weight", "bias"):
            name = f"layers.{i}.{kind}"
            if name not in tensors:
                raise ValueError(f"{path}: tensor {name} missing")
            state[name] = tensors[name][1]
    model.load_state_dict(state)  # raises on any shape mismatch
    return model


def storage_dtype(path):
    """The dtype of layers.0.weight in a file ("F32", "F16", "BF16")."""
    return read_safetensors(path)[1]["layers.0.weight"][0]


# ---------------------------------------------------------------------------------------------
# Gaussian-mixture targets, closed form at every t (docs/physics.md section 2)


def ring_mixture(K=8, radius=4.0, sigma=0.25, dtype=torch.float64):
    """The paper's ring: (means (K, 2), sigma^2 (K,), log weights (K,))."""
    ang = 2 * math.pi * torch.arange(K, dtype=torch.float64) / K
    means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], dim=1)
    return (means.to(dtype), torch.full((K,), sigma * sigma, dtype=dtype),
            torch.full((K,), -math.log(K), dtype=dtype))


def mixture_score(x, ab, means, sigma2, log_w, with_div=True):
    """Score s = grad log p(x, t) and div s of the diffused mixture at abar = ab (a float, or a
    tensor (n,) for one time per row). x (n, d); means (K, d); sigma2, log_w (K,). Log-space softmax
    over components (the modes are ~12 sigma apart)."""
    d = x.shape[1]
    ab = torch.as_tensor(ab, dtype=x.dtype, device=x.device).reshape(-1, 1)   # (n or 1, 1)
    v = ab * sigma2 + (1.0 - ab)                                              # (n or 1, K)
    u = torch.sqrt(ab)[:, :, None] * means[None, :, :] - x[:, None, :]        # (n, K, d)
    uu = (u * u).sum(2)                                                       # (n, K)
    logit = log_w - 0.5 * uu / v - 0.5 * d * torch.log(2 * math.pi * v)
    rv = torch.softmax(logit, dim=1) / v
    s = (rv[:, :, None] * u).sum(1)
    if not with_div:
        return s, None
    div = (rv * (uu / v - d)).sum(1) - (s * s).sum(1)
    return s, div


def mixture_sample(n, ab, means, sigma2, log_w, generator=None):
    """x ~ p(x, t) exactly: a component by weight, then sqrt(ab) m_k + sqrt(v_k) z."""
    k = torch.multinomial(torch.exp(log_w).double(), n, replacement=True, generator=generator)
    v = ab * sigma2[k] + (1.0 - ab)
    z = torch.randn(n, means.shape[1], dtype=means.dtype, generator=generator)
    return math.sqrt(ab) * means[k] + torch.sqrt(v)[:, None] * z


# ---------------------------------------------------------------------------------------------
# CLI


def _cmd_info(a):
    meta, tensors = read_safetensors(a.file)
    print(json.dumps(meta, indent=2))
    for name, (dt, t) in tensors.items():
        print(f"{name}: {dt} {list(t.shape)}")
    model = load_safetensors(a.file).double()
    x = torch.zeros(1, model.dim, dtype=torch.float64)
    print("score(0, 0.5) =", model.score(x, 0.5).tolist())


def _cmd_export(a):
    torch.manual_seed(a.seed)
    hidden = tuple(int(h) for h in a.hidden.split(",")) if a.hidden else ()
    model = TaepScoreMLP(a.dim, hidden, a.embedding_dim, a.time_scale, a.max_period,
                         a.parameterization)
    export_safetensors(model, a.out, a.dtype)
    print(f"wrote {a.out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="print a weight file's metadata and tensors")
    p.add_argument("file")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("export", help="write a randomly initialized model (PyTorch default init)")
    p.add_argument("out")
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--hidden", default="128,128,128", help="comma-separated widths")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--time-scale", type=float, default=100.0)
    p.add_argument("--max-period", type=float, default=10000.0)
    p.add_argument("--parameterization", choices=["score", "eps"], default="score")
    p.add_argument("--dtype", choices=list(_DTYPES), default="F32")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_export)
    a = ap.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
