# Type stubs of the taep package (docs/python.md).
import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from .errors import BackendUnavailable as BackendUnavailable
from .errors import ConfigError as ConfigError
from .errors import CudaError as CudaError
from .errors import Error as Error
from .errors import NonFiniteResult as NonFiniteResult
from .errors import TrainingDiverged as TrainingDiverged

__version__: str

Config = Union[Mapping[str, Any], str, os.PathLike[str], None]
Overrides = Optional[Mapping[str, Any]]
ProgressCallback = Callable[[Dict[str, Any]], None]

# score(x, t) -> (n, d) and divergence(x, t) -> (n,), x an (n, d) float32 array; or a
# taep.torch.ScoreModule as score (docs/python.md, "Score models as functions").
ScoreFunction = Callable[[npt.NDArray[np.float32], float], Any]
def run(config: Config = None, *, score: Any = None, divergence: Optional[ScoreFunction] = None,
        parameterization: str = "score", batch: int = 4096, reference: Any = None,
        reference_divergence: Optional[ScoreFunction] = None, overrides: Overrides = None,
        progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]: ...
def paths(config: Config = None, first: int = 0, count: Optional[int] = None, *,
          score: Any = None, divergence: Optional[ScoreFunction] = None,
          parameterization: str = "score", batch: int = 4096, reference: Any = None,
          reference_divergence: Optional[ScoreFunction] = None, overrides: Overrides = None,
          progress: Optional[ProgressCallback] = None,
          **dotted: Any) -> Dict[str, npt.NDArray[np.float64]]: ...
def sample(config: Config, n: int, *, score: Any = None,
           divergence: Optional[ScoreFunction] = None, parameterization: str = "score",
           batch: int = 4096, reference: Any = None,
           reference_divergence: Optional[ScoreFunction] = None, overrides: Overrides = None,
           progress: Optional[ProgressCallback] = None, **dotted: Any) -> npt.NDArray[np.float32]: ...
def detailed_ft(config: Config = None, *, min_count: int = 20, score: Any = None,
                divergence: Optional[ScoreFunction] = None, parameterization: str = "score",
                batch: int = 4096, reference: Any = None,
                reference_divergence: Optional[ScoreFunction] = None, overrides: Overrides = None,
                progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]: ...
def rates(config: Config = None, *, grid: int = 65, draws: int = 4096,
          data_entropy: Optional[float] = None, nll_points: int = 0,
          overrides: Optional[Mapping[str, Any]] = None,
          progress: Optional[ProgressCallback] = None, **dotted: Any) -> Dict[str, Any]: ...
def track(snapshots: Union[str, os.PathLike[str]], *,
          holdout: Optional[Union[str, os.PathLike[str]]] = None, config: Config = None,
          against: str = "last", samples: int = 2000, k: int = 5, paths: Optional[int] = None,
          steps: Optional[int] = None, seed: Optional[int] = None,
          progress: Optional[ProgressCallback] = None) -> Dict[str, Any]: ...
def train(config: Config = None, *, overrides: Overrides = None,
          progress: Optional[ProgressCallback] = None, snapshot_every: int = 0,
          snapshot_dir: Optional[Union[str, os.PathLike[str]]] = None,
          **dotted: Any) -> Tuple[Dict[str, npt.NDArray[np.float32]], Dict[str, Any]]: ...
def load_weights(path: Union[str, os.PathLike[str]]) -> Tuple[Dict[str, npt.NDArray[np.float32]], Dict[str, str]]: ...
def save_weights(path: Union[str, os.PathLike[str]], weights: Mapping[str, npt.ArrayLike],
                 metadata: Mapping[str, Any]) -> None: ...
def built_with_cuda() -> bool: ...
def cuda_available() -> bool: ...
def git_commit() -> str: ...
