"""Elements exchanged between sites of equal multiplicity when the fit says so (gasolve.site_exchange).

The case is Li2TiCo2O5 (Materials Project mp-769646, C2, every metal on 2a or 2b), whose composition run ended with
Ti and Co each on the other's site (χ² 1.245 against the noise level 1.06): no run of that Wyckoff hypothesis could
repair it. Its pattern is simulated with pymatgen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from simulated import simulated_config

from gasolve.site_exchange import candidate_pairs, exchange_elements

REPO = Path(__file__).resolve().parents[1]

CELL = (5.222102, 14.662604, 5.256379, 90.0, 112.102372, 90.0)
#: mp-769646 (Materials Project, CC BY 4.0): element, Wyckoff label, coordinates on the position's representative
#: (0, y, 0) or (0, y, 1/2) (the C-centred images of four of them are the ones pymatgen lists).
SITES = (
    ("Li", "2a", (0.0, 0.102384, 0.0)),
    ("Li", "2b", (0.0, 0.201398, 0.5)),
    ("Li", "2a", (0.0, 0.500238, 0.0)),
    ("Li", "2b", (0.0, 0.797866, 0.5)),
    ("Ti", "2a", (0.0, 0.695055, 0.0)),
    ("Ti", "2b", (0.0, 0.998121, 0.5)),
    ("Co", "2a", (0.0, 0.300096, 0.0)),
    ("Co", "2b", (0.0, 0.395046, 0.5)),
    ("Co", "2a", (0.0, 0.901176, 0.0)),
    ("Co", "2b", (0.0, 0.603554, 0.5)),
    ("O", "4c", (0.243266, 0.907684, 0.736667)),
    ("O", "4c", (0.244517, 0.796636, 0.233147)),
    ("O", "4c", (0.75175, 0.600848, 0.749364)),
    ("O", "4c", (0.229163, 0.999812, 0.270775)),
    ("O", "4c", (0.776246, 0.699952, 0.225237)),
)
TI, CO = 4, 7  # Ti on 2a and Co on 2b: the pair the wrong model has exchanged


def test_candidate_pairs_are_judged_by_the_pattern_only():
    elements = ["Li", "Ti", "Co", "Ga", "Ge", "H", "O"]
    multiplicity = [2, 2, 2, 4, 4, 2, 4]
    # Li/Ti, Li/Co, Ti/Co, Ga/O, Ge/O; not Ga/Ge (one electron apart: bond valence decides), not H, not 2 with 4
    assert candidate_pairs(elements, multiplicity) == [(0, 1), (0, 2), (1, 2), (3, 6), (4, 6)]


class _ToyScorer:
    """Rwp 0.1 + 0.05 per site not at its target row: a fit that only the right exchange lowers."""

    def __init__(self, target):
        self.target = target

    def project(self, frac):
        return frac

    def rwp(self, frac):
        return np.array([0.1 + 0.05 * np.sum(np.any(np.abs(f - self.target) > 1e-9, axis=1)) for f in frac])


def test_exchanges_are_kept_while_the_fit_improves_enough():
    target = np.arange(12, dtype=float).reshape(4, 3)
    scorer = _ToyScorer(target)
    model = target[[1, 0, 3, 2]]  # two exchanges away

    def refine(s, frac):
        return frac, float(s.rwp(frac[None])[0])

    found = exchange_elements(lambda labels: scorer, refine, model, ["g"] * 4, ["Ti", "Co", "Ti", "Co"], [2] * 4, 0.3)
    assert sorted(found.exchanges) == [(0, 1), (2, 3)] and found.rwp == pytest.approx(0.1)
    assert np.array_equal(found.frac, target)
    kept = exchange_elements(lambda labels: scorer, refine, target, ["g"] * 4, ["Ti", "Co", "Ti", "Co"], [2] * 4, 0.1)
    assert kept.exchanges == () and np.array_equal(kept.frac, target)


@pytest.fixture(scope="module")
def wrong_setup(tmp_path_factory):
    """The setup of the model with Ti (2a) and Co (2b) exchanged, and its coordinates (the truth's, exchanged)."""
    from gasolve import pipeline
    from gasolve.config import load_run_config

    order = list(range(len(SITES)))
    order[TI], order[CO] = CO, TI
    labels = [SITES[k][1] for k in order]
    configs = simulated_config(
        tmp_path_factory.mktemp("li2tico2o5"),
        "Li2TiCo2O5",
        "C2",
        CELL,
        [(e, x) for e, _, x in SITES],
        {"run": f"sites = {[e for e, _, _ in SITES]}\nwyckoff = {labels}"},
        fwhm=0.08,
    )
    return pipeline.prepare(load_run_config(configs["run"])), np.array([SITES[k][2] for k in order])


def test_the_exchange_repairs_a_model_with_two_elements_on_each_others_sites(wrong_setup):
    from gasolve import pipeline
    from gasolve.refine import refine_coordinates

    setup, frac = wrong_setup
    refined = refine_coordinates(setup.scorer, frac)
    setup_after, best, note = pipeline.exchange_sites(setup, refined)
    assert note["exchanged_sites"] == [f"Ti{TI + 1}<->Co{CO + 1}"]
    assert best.rwp_after < 0.8 * refined.rwp_after
    wyckoff = setup_after.config.structure.wyckoff
    assert (wyckoff[TI], wyckoff[CO]) == ("2a", "2b")  # Ti back on 2a, Co on 2b
    assert np.allclose(best.frac[TI], SITES[TI][2], atol=5e-3) and np.allclose(best.frac[CO], SITES[CO][2], atol=5e-3)
    again_setup, again, again_note = pipeline.exchange_sites(setup_after, best)  # the truth: nothing to exchange
    assert again_note["exchanges"] == 0 and again is best and again_setup is setup_after


def test_a_site_on_the_wrong_inversion_centre_is_moved(tmp_path):
    """Li2MoO3 (P-1) with the Li of 1f put on 1b: the move to 1f is found and kept; the truth stays as it is."""
    from test_completion import LI2MOO3_CELL, LI2MOO3_SITES

    from gasolve import pipeline
    from gasolve.config import load_run_config
    from gasolve.refine import refine_coordinates

    wrong = ["2i", "1b", "1e", "2i", "2i", "2i", "2i"]
    right = ["2i", "1f", "1e", "2i", "2i", "2i", "2i"]
    elements = [e for e, _ in LI2MOO3_SITES]
    configs = simulated_config(
        tmp_path,
        "Li2MoO3",
        2,
        LI2MOO3_CELL,
        list(LI2MOO3_SITES),
        {stem: f"sites = {elements}\nwyckoff = {labels}" for stem, labels in (("wrong", wrong), ("right", right))},
        fwhm=0.08,
    )
    frac = np.array([x for _, x in LI2MOO3_SITES])
    setup = pipeline.prepare(load_run_config(configs["wrong"]))
    refined = refine_coordinates(setup.scorer, setup.scorer.project(frac[None])[0])
    after, best, note = pipeline.exchange_sites(setup, refined)
    assert note["moved_sites"] == ["Li2 1b->1f"] and note["exchanges"] == 0
    assert after.config.structure.wyckoff == tuple(right) and best.rwp_after < 0.9 * refined.rwp_after
    truth = pipeline.prepare(load_run_config(configs["right"]))
    refined = refine_coordinates(truth.scorer, frac)
    assert pipeline.exchange_sites(truth, refined)[2]["moves"] == 0
