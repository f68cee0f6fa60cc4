"""Space groups from extinctions (gasolve/indexing/extinctions.py): classes, absences, the likelihood, ranking, and
patterns simulated by pymatgen from known structures and the measured PbSO4 pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from naive import extinction_log_ratio, holohedral_absence

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.diffraction.reflections import generate_reflections
from gasolve.indexing.extinctions import (
    ExtinctionSettings,
    absent_in_holohedry,
    candidate_groups,
    extinction_classes,
    log_likelihood_ratio,
    overlap_labels,
    rank_space_groups,
    score_classes,
)

ROOT = Path(__file__).resolve().parents[1]
CIF = ROOT / "tests" / "data" / "cif"

CELLS = {
    "aP": (5.1, 6.2, 7.3, 80.0, 85.0, 95.0),
    "mP": (5.1, 6.2, 7.3, 90.0, 104.0, 90.0),
    "mC": (5.1, 6.2, 7.3, 90.0, 104.0, 90.0),
    "oP": (5.1, 6.2, 7.3, 90.0, 90.0, 90.0),
    "oC": (5.1, 6.2, 7.3, 90.0, 90.0, 90.0),
    "oI": (5.1, 6.2, 7.3, 90.0, 90.0, 90.0),
    "oF": (5.1, 6.2, 7.3, 90.0, 90.0, 90.0),
    "cP": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
    "cI": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
    "cF": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
    "hP": (5.1, 5.1, 7.3, 90.0, 90.0, 120.0),
    "hR": (5.1, 5.1, 7.3, 90.0, 90.0, 120.0),
}


def _classes(bravais):
    return extinction_classes(candidate_groups(UnitCell(*CELLS[bravais]), bravais))


# International Tables Vol. A (2016) Table 1.6.4.x, extinction symbols: 8 monoclinic P with unique axis b (three
# cell choices), 2 C; orthorhombic 71 P, 9 C (the A and B settings of the 111 are not C-centred cells), 8 I, 5 F;
# cubic 7 P, 5 I, 5 F; one triclinic; hexagonal-axes P 7 (P---, P31--, P61--, P63--, P--c, P-c-, P-cc); R 2.
COUNTS = {"aP": 1, "mP": 8, "mC": 2, "oP": 71, "oC": 9, "oI": 8, "oF": 5, "cP": 7, "cI": 5, "cF": 5, "hP": 7, "hR": 2}


@pytest.mark.parametrize(("bravais", "count"), COUNTS.items())
def test_extinction_classes_per_lattice_are_those_of_international_tables(bravais, count):
    assert len(_classes(bravais)) == count


def test_classes_hold_the_groups_that_share_absences():
    def members(bravais, symbol):
        found = [c for c in _classes(bravais) if symbol in [g.symbol for g in c.groups]]
        assert len(found) == 1, symbol
        return {g.symbol for g in found[0].groups}

    assert members("oP", "P n m a") == {"P n m a", "P n 21 a"}  # Pnma and Pna2_1 (b-axis setting)
    assert members("oP", "P 21 21 21") == {"P 21 21 21"}
    assert members("mP", "P 1 21/c 1") == {"P 1 21/c 1"}
    assert members("cF", "F d -3 m:2") == {"F d -3 m:2", "F d -3:2"}
    assert members("cI", "I a -3") == {"I a -3"}
    assert {"I m -3 m", "I 2 3", "I -4 3 m"} <= members("cI", "I m -3 m")
    # the first class of a lattice has no absences beyond its centring
    assert "P m m m" in [g.symbol for g in _classes("oP")[0].groups]


def test_candidates_follow_the_metric():
    monoclinic = {g.symbol for g in candidate_groups(UnitCell(*CELLS["mP"]), "mP")}
    assert {"P 1 21/c 1", "P 1 21/n 1", "P 1 21/a 1"} <= monoclinic
    assert not any(symbol.startswith("P 1 1") for symbol in monoclinic)  # unique axis c needs gamma != 90
    rhombohedral = {g.symbol for g in candidate_groups(UnitCell(*CELLS["hR"]), "hR")}
    assert "R -3 c:H" in rhombohedral and all(s.endswith(":H") for s in rhombohedral)


@pytest.mark.parametrize(
    ("symbol", "holohedry", "cell"),
    [
        ("P 1 21/c 1", "P 1 2/m 1", CELLS["mP"]),
        ("P n m a", "P m m m", CELLS["oP"]),
        ("P a -3", "P m -3 m", CELLS["cP"]),
        ("I a -3", "I m -3 m", CELLS["cI"]),
        ("P 63/m m c", "P 6/m m m", CELLS["hP"]),
        ("P -3 1 c", "P 6/m m m", CELLS["hP"]),
        ("R -3 c:H", "R -3 m:H", CELLS["hR"]),
    ],
)
def test_holohedral_absences_match_gemmi_one_reflection_at_a_time(symbol, holohedry, cell):
    group, holo = SpaceGroup.from_symbol(symbol), SpaceGroup.from_symbol(holohedry)
    hkl = generate_reflections(UnitCell(*cell), holo, 0.9).hkl
    expected = holohedral_absence(symbol, holohedry, hkl)
    assert absent_in_holohedry(group, hkl, holo).tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_pa3_reflection_whose_orbit_is_half_absent_counts_as_present():
    group, holo = SpaceGroup.from_symbol("P a -3"), SpaceGroup.from_symbol("P m -3 m")
    # 0kl: k = 2n in Pa-3: 012 is absent, 021 (the same d, one m-3m orbit) is not; 010 and all its images are
    assert group.is_absent(np.array([[0, 1, 2], [0, 2, 1]])).tolist() == [True, False]
    assert absent_in_holohedry(group, np.array([[0, 1, 2], [0, 1, 0]]), holo).tolist() == [False, True]


@pytest.mark.parametrize("intensity", [-3.0, -0.5, 0.0, 0.4, 2.0, 10.0, 80.0])
@pytest.mark.parametrize(("esd", "mean"), [(1.0, 20.0), (0.5, 3.0), (2.0, 1.0)])
def test_log_ratio_matches_quadrature(intensity, esd, mean):
    got = log_likelihood_ratio(np.array([intensity]), np.array([esd]), np.array([mean]))[0]
    assert got == pytest.approx(extinction_log_ratio(intensity, esd, mean), abs=1e-6, rel=1e-6)


@pytest.mark.parametrize("intensity", [-1.0, 0.0, 2.0, 10.0, 30.0])
@pytest.mark.parametrize("contamination", [0.003, 0.03])
def test_contaminated_log_ratio_matches_quadrature_and_is_bounded(intensity, contamination):
    got = log_likelihood_ratio(np.array([intensity]), np.array([1.0]), np.array([20.0]), contamination)[0]
    assert got == pytest.approx(extinction_log_ratio(intensity, 1.0, 20.0, contamination), abs=1e-6, rel=1e-6)
    # One strong line where a class wants an absence costs it at most log(1/contamination).
    assert got >= np.log(contamination) - 1e-12
    plain = log_likelihood_ratio(np.array([intensity]), np.array([1.0]), np.array([20.0]))[0]
    assert got <= max(plain, np.log(contamination)) + 1e-9


def test_log_ratio_signs():
    ratio = log_likelihood_ratio(np.array([0.0, 30.0]), np.array([1.0, 1.0]), np.array([20.0, 20.0]))
    assert ratio[0] > 2.0 and ratio[1] < -100.0  # zero favours absence; 30 esd says present


def test_overlap_groups_by_width_and_correlation():
    two_theta = np.array([20.0, 20.02, 25.0, 30.0, 40.0])
    fwhm = np.full(5, 0.1)
    covariance = np.diag([1.0, 1.0, 1.0, 1.0, np.inf])
    covariance[2, 3] = covariance[3, 2] = -0.8  # e.g. Kα2 of one under Kα1 of the other
    label = overlap_labels(two_theta, fwhm, covariance, ExtinctionSettings(overlap_fraction=0.5))
    assert label[0] == label[1] and label[2] == label[3] and label[0] != label[2] and label[4] == -1


def test_score_classes_on_hand_made_intensities():
    """oP cell, intensities 100 everywhere except those absent in Pnma (zero within their esd): the Pnma/Pna2_1
    class first; a class whose absences include a strong reflection is far behind."""
    cell = UnitCell(*CELLS["oP"])
    holo = SpaceGroup.from_symbol("P m m m")
    reflections = generate_reflections(cell, holo, 1.2)
    hkl = reflections.hkl
    truth = absent_in_holohedry(SpaceGroup.from_symbol("P n m a"), hkl, holo)
    rng = np.random.default_rng(0)
    intensities = np.where(truth, rng.normal(0.0, 1.0, len(hkl)), rng.exponential(100.0, len(hkl)))
    two_theta = np.degrees(2 * np.arcsin(1.5406 / (2 * reflections.d_spacing)))
    two_theta = two_theta + 0.3 * np.arange(len(hkl)) / len(hkl)  # spread accidental coincidences
    classes = extinction_classes(candidate_groups(cell, "oP"))
    scores = score_classes(
        classes, hkl, two_theta, np.full(len(hkl), 1e-3), intensities, np.eye(len(hkl)),
        1.0 / reflections.d_spacing**2, holo,
    )  # fmt: skip
    assert {g.symbol for g in scores[0].extinction_class.groups} == {"P n m a", "P n 21 a"}
    assert scores[0].log_likelihood > scores[1].log_likelihood + 3
    assert sum(s.probability for s in scores) == pytest.approx(1.0)
    none = next(s for s in scores if s.extinction_class.n_absent == 0)
    assert none.log_likelihood == 0.0 and scores[-1].log_likelihood < -100


def test_prior_ranks_within_a_class_and_settings_share_a_number():
    classes = _classes("oP")
    from gasolve.indexing.extinctions import ClassScore

    pnma = next(c for c in classes if "P n m a" in [g.symbol for g in c.groups])
    other = next(c for c in classes if "P 21 21 21" in [g.symbol for g in c.groups])
    scores = [ClassScore(pnma, 10.0, 0.99, 3), ClassScore(other, 5.0, 0.01, 2)]
    uniform = rank_space_groups(scores)
    assert uniform[0].posterior == pytest.approx(uniform[1].posterior)  # Pnma and Pna2_1 tie without a prior
    assert sum(r.posterior for r in uniform) == pytest.approx(1.0)
    network = {62: 0.1, 33: 0.6, 19: 0.3}
    ranked = rank_space_groups(scores, prior=lambda n: network.get(n, 0.0), prior_floor=0.0)
    assert [r.group.number for r in ranked] == [33, 62, 19]
    assert ranked[0].prior_in_class == pytest.approx(0.6 / 0.7)
    # the likelihood ratio e^5 against a prior ratio 0.6 / 0.3: Pna2_1 still far ahead of P2_12_12_1
    assert ranked[0].posterior / ranked[2].posterior == pytest.approx(np.exp(5.0) * 0.6 / 0.3, rel=1e-6)


# ---- simulated patterns (pymatgen XRDCalculator, Poisson counts) ------------------------------------------------


def _simulated_case(structure, number, seed=0):
    from benchmarks.extinctions import bravais_of, simulated_pattern, true_class_rank
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.indexing.extinctions import determine_space_group

    lattice = structure.lattice
    cell = (lattice.a, lattice.b, lattice.c, lattice.alpha, lattice.beta, lattice.gamma)
    analysis = determine_space_group(
        simulated_pattern(structure, seed), parse_radiation("CuKa1"), cell, bravais_of(number)
    )
    return analysis, true_class_rank(analysis, number)


def _standard(path):
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    analyzer = SpacegroupAnalyzer(Structure.from_file(str(path)), symprec=0.01)
    return analyzer.get_refined_structure(), analyzer.get_space_group_number()


@pytest.mark.parametrize(
    "path", ["pyxtal-database/NaCl.cif", "aflow-prototypes/117_A2B_mP12_14_2e_e.cif"], ids=["Fm-3m", "P21/c"]
)
def test_simulated_pattern_gives_its_class_first(path):
    structure, number = _standard(CIF / path)
    analysis, (rank, _) = _simulated_case(structure, number)
    assert rank == 1
    # a clear margin: NaCl's present reflections rule out F m -3 c and beyond; P2_1/c's 0k0, k odd, rule out P c
    assert analysis.classes[0].log_likelihood > analysis.classes[1].log_likelihood + 5


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "aflow-prototypes/098_A2B_oP12_19_2a_a.cif",  # P2_12_12_1
        "aflow-prototypes/133_A3B7_oP40_62_cd_3c2d.cif",  # Pnma
        "aflow-prototypes/086_AB3C4_oP16_31_a_ab_2ab.cif",  # Pmn2_1
        "aflow-prototypes/118_A2B_mC48_15_ae3f_2f.cif",  # C2/c
        "aflow-prototypes/028_A2BC4_cF56_227_d_a_e.cif",  # Fd-3m
        "aflow-prototypes/127_AB2_hP24_194_ef_fgh.cif",  # P6_3/mmc
    ],
)
def test_simulated_known_structures_give_their_class_first(path):
    structure, number = _standard(CIF / path)
    _, (rank, _) = _simulated_case(structure, number)
    assert rank == 1


@pytest.mark.slow
@pytest.mark.parametrize("number", [33, 206, 229, 61])  # Pna2_1, Ia-3, Im-3m, Pbca
def test_simulated_random_structures_give_their_class_first(number):
    from benchmarks.extinctions import random_structure

    _, (rank, _) = _simulated_case(random_structure(number, 0), number)
    assert rank == 1


@pytest.mark.slow
def test_measured_pbso4_gives_the_pnma_class_first():
    """IUCr round-robin PbSO4 (Cu Kα1+2), cell from gasolve index (docs/indexing.md): a = 5.40, b = 6.96,
    c = 8.48 Å is Pnma's b c a setting, where Pnma reads P m c n and Pna2_1 P 2_1 c n."""
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.indexing.extinctions import determine_space_group
    from gasolve.io.patterns import read_pattern

    analysis = determine_space_group(
        read_pattern(ROOT / "examples" / "PbSO4.xra"), parse_radiation("CuKa12"), (5.4004, 6.9624, 8.4831, 90, 90, 90),
        "oP", prior=lambda n: 1.0 if n == 62 else 0.5,
    )  # fmt: skip
    first = analysis.classes[0]
    assert {g.number for g in first.extinction_class.groups} == {62, 33}
    assert first.log_likelihood > analysis.classes[1].log_likelihood + 10
    assert analysis.space_groups[0].group.number == 62 and analysis.space_groups[0].group.symbol == "P m c n"
    assert analysis.space_groups[0].as_dict()["standard_symbol"] == "P n m a"


# ---- gasolve classify: the extinctions + network route ----------------------------------------------------------


def test_classify_falls_back_to_the_network_when_the_pattern_does_not_index(tmp_path, capsys):
    """Three lines cannot be indexed: the network's answer, route "network", the reason noted."""
    from conftest import strict_json

    from gasolve.cli.main import main

    two_theta = np.arange(5.0, 90.0, 0.02)
    y = 50.0 + sum(1000.0 * np.exp(-0.5 * ((two_theta - c) / 0.05) ** 2) for c in (21.3, 33.7, 47.2))
    path = tmp_path / "three.xy"
    path.write_text("".join(f"{t:.3f} {v:.2f}\n" for t, v in zip(two_theta, y, strict=True)))
    assert main(["classify", str(path), "--json", "--wavelength", "CuKa1"]) == 0  # the file states none
    answer = strict_json(capsys.readouterr().out)
    assert answer["route"] == "network" and answer["cell"] is None and "not indexed" in answer["note"]
    assert {"file", "crystal_system", "space_groups", "abstained"} <= set(answer)


def test_classify_route_combines_the_extinctions_with_the_network(tmp_path, capsys, monkeypatch):
    """The CLI's glue on a hand-made analysis (the science is tested above): posteriors summed over the settings
    of one number, the network's probabilities as the prior, the cell and the route in the JSON."""
    from conftest import strict_json

    import gasolve.indexing.extinctions as extinctions
    from gasolve.cli.main import main
    from gasolve.indexing.extinctions import ClassScore, SpaceGroupAnalysis

    classes = _classes("oP")
    pnma = next(c for c in classes if "P n m a" in [g.symbol for g in c.groups])
    other = next(c for c in classes if "P 21 21 21" in [g.symbol for g in c.groups])
    seen = {}

    def fake(pattern, radiation, prior=None, **_):
        seen["prior"] = [prior(n) for n in range(1, 231)]
        scores = [ClassScore(pnma, 20.0, 1.0, 4), ClassScore(other, 2.0, 0.0, 2)]
        ranked = extinctions.rank_space_groups(scores, prior)
        return SpaceGroupAnalysis(CELLS["oP"], "oP", tuple(scores), tuple(ranked), 0.05), "oP cell, M20 50.0"

    monkeypatch.setattr(extinctions, "index_and_rank", fake)
    pattern = ROOT / "examples" / "symmetry" / "PbSO4.xye"
    assert main(["classify", str(pattern), "--json"]) == 0
    answer = strict_json(capsys.readouterr().out)
    assert answer["route"] == "extinctions+network" and answer["cell"] == list(CELLS["oP"])
    assert sum(seen["prior"]) == pytest.approx(1.0, abs=1e-4)
    numbers = [g["number"] for g in answer["space_groups"]]
    assert set(numbers[:2]) == {62, 33} and 19 in numbers  # the Pnma class first, P2_12_12_1 far behind
    p62, p33 = seen["prior"][61], seen["prior"][32]
    first = answer["space_groups"][0]
    assert first["number"] == (62 if p62 >= p33 else 33)
    assert first["probability"] == pytest.approx(max(p62, p33) / (p62 + p33), abs=0.02)
    assert answer["crystal_system"]["name"] == "orthorhombic" and answer["extinction_class"]["log_likelihood"] == 20


@pytest.mark.slow
def test_classify_measured_pbso4_takes_the_extinction_route(capsys):
    from conftest import strict_json

    from gasolve.cli.main import main

    pattern = ROOT / "examples" / "PbSO4.xra"
    assert main(["classify", str(pattern), "--wavelength", "CuKa12", "--json"]) == 0
    answer = strict_json(capsys.readouterr().out)
    assert answer["route"] == "extinctions+network" and answer["bravais"] == "oP"
    np.testing.assert_allclose(sorted(answer["cell"][:3]), [5.400051, 6.961979, 8.482371], atol=3e-3)
    assert {g["number"] for g in answer["space_groups"][:2]} == {62, 33}
    assert answer["crystal_system"]["name"] == "orthorhombic"
