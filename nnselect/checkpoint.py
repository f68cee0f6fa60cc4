"""Save and load a trained selection network together with everything needed to feed it.

One file (msgpack via ``flax.serialization``, a few MB) holds the weights (``nnx.Param`` and the batch-norm
running statistics ``nnx.BatchStat``; not the dropout RNG state) and a JSON metadata block: model class and
hyper-parameters, site labels and elements (the order of the outputs), the 2θ grid, wavelength and zero shift
of the input, the normalisation scale, the label radius, and the training config. A network is only meaningful
on inputs prepared exactly as in training, so :meth:`CheckpointMeta.profile_inputs` builds the input pipeline
from the metadata, and anything that does not fit (another number of sites, other elements unless a transfer is
asked for, a pattern that cannot be resampled onto the grid, weights that do not fit the architecture) is
refused with :class:`~gasolve.errors.InputError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from flax import nnx

from gasolve.errors import InputError
from gasolve.networks import weights_file
from nnselect.input_pipeline import InputGrid, ProfileInputs
from nnselect.models import MODELS, create_model, eval_mode

#: Format tag written into every checkpoint.
FORMAT = "nnselect-checkpoint-1"


@dataclass(frozen=True)
class CheckpointMeta:
    """What travels with the weights.

    Attributes
    ----------
    model : str
        Class name (a key of :data:`nnselect.models.MODELS`).
    model_options : dict
        Its hyper-parameters.
    n_points, n_sites : int
    site_labels : tuple of str, length n_sites
        Output order.
    elements : tuple of str, length n_sites
    two_theta : tuple of float, length n_points
        The input grid (degrees).
    wavelength : float
        Primary wavelength of the grid (Å).
    radiation : tuple of (float, float)
        All emission lines of the training pattern (Å, weight).
    zero : float
        Zero shift of the grid (degrees).
    scale : float
        Global normalisation: inputs are (y_obs - y_calc) / σ / scale.
    label_radius : float
        Å; what "in place" meant in training.
    config : dict
        The training config (:meth:`nnselect.configs.TrainConfig.to_dict`).
    info : dict
        Free-form provenance (data set name, epoch, versions, ...).
    """

    model: str
    model_options: dict
    n_points: int
    n_sites: int
    site_labels: tuple[str, ...]
    elements: tuple[str, ...]
    two_theta: tuple[float, ...]
    wavelength: float
    radiation: tuple[tuple[float, float], ...]
    zero: float
    scale: float
    label_radius: float
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"unknown model class {self.model!r}; known: {', '.join(MODELS)}")
        if len(self.two_theta) != self.n_points:
            raise InputError(f"the grid has {len(self.two_theta)} points, the model expects {self.n_points}")
        if len(self.site_labels) != self.n_sites or len(self.elements) != self.n_sites:
            raise InputError(f"site labels and elements must list {self.n_sites} sites")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"normalisation scale must be positive, got {self.scale}")

    @property
    def grid(self) -> InputGrid:
        """The network's input grid."""
        return InputGrid(np.array(self.two_theta), self.wavelength, self.zero)

    def check_sites(self, elements: list[str] | tuple[str, ...], *, allow_other_elements: bool = False) -> None:
        """Refuse models whose sites do not match the network's outputs.

        Parameters
        ----------
        elements : sequence of str, length n_sites
            Elements of the models' sites, in output order.
        allow_other_elements : bool
            Accept other elements on the same number of sites: the paper's transfer (a net trained on K4PbO4
            applied to K4SnO4, Pb -> Sn).
        """
        elements = tuple(elements)
        if len(elements) != self.n_sites:
            raise InputError(
                f"the network has {self.n_sites} outputs (sites {', '.join(self.site_labels)}); "
                f"these models have {len(elements)} sites"
            )
        if elements != self.elements and not allow_other_elements:
            raise InputError(
                f"the network was trained for sites {', '.join(self.elements)}, these models have "
                f"{', '.join(elements)}; pass allow_other_elements=True to apply it to an analogue (transfer)"
            )

    def profile_inputs(self, problem, *, allow_other_elements: bool = False) -> ProfileInputs:
        """The input pipeline that feeds this network from a problem's models.

        Parameters
        ----------
        problem : gasolve.scoring.ScoringProblem
        allow_other_elements : bool
            See :meth:`check_sites`.

        Returns
        -------
        ProfileInputs
            Difference profiles / σ / :attr:`scale`, resampled onto :attr:`grid`.

        Raises
        ------
        InputError
            Other sites, or a pattern that does not cover the grid.
        """
        self.check_sites(problem.elements, allow_other_elements=allow_other_elements)
        return ProfileInputs(problem, self.scale, self.grid)

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        data = json.loads(text)
        data["site_labels"] = tuple(data["site_labels"])
        data["elements"] = tuple(data["elements"])
        data["two_theta"] = tuple(float(x) for x in data["two_theta"])
        data["radiation"] = tuple((float(w), float(x)) for w, x in data["radiation"])
        return cls(**data)


def save(path: str | Path, model: nnx.Module, meta: CheckpointMeta) -> None:
    """Write weights and metadata to ``path`` atomically (:func:`gasolve.networks.weights_file.write`).

    Parameters
    ----------
    path : str or Path
    model : nnx.Module
        Of class ``meta.model`` built with ``meta.model_options``.
    meta : CheckpointMeta
    """
    if type(model).__name__ != meta.model:
        raise ValueError(f"model is a {type(model).__name__}, the metadata says {meta.model}")
    weights_file.write(path, model, FORMAT, meta.to_json())


def read_meta(path: str | Path) -> tuple[CheckpointMeta, dict[str, np.ndarray]]:
    """Metadata and flat weights of a checkpoint, without building the model."""
    text, weights = weights_file.read(path, FORMAT, "an nnselect checkpoint")
    try:
        meta = CheckpointMeta.from_json(text)
    except InputError as error:
        raise InputError(error.message, str(path)) from None
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"malformed checkpoint metadata: {error}", str(path)) from None
    return meta, weights


def load(path: str | Path) -> tuple[nnx.Module, CheckpointMeta]:
    """Rebuild a saved network.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    model : nnx.Module
        In evaluation mode (:func:`nnselect.models.eval_mode`: no dropout, running batch statistics).
    meta : CheckpointMeta

    Raises
    ------
    InputError
        Not a checkpoint, another format, an unknown model class, or weights whose names or shapes do not
        fit the architecture the metadata describes.
    """
    meta, weights = read_meta(path)
    try:
        model = create_model(meta.model, meta.n_points, meta.n_sites, meta.model_options)
    except (TypeError, ValueError) as error:
        raise InputError(f"cannot build {meta.model} from the stored hyper-parameters: {error}", str(path)) from None
    weights_file.restore(model, weights, path, meta.model)
    return eval_mode(model), meta
