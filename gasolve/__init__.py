"""gasolve: direct-space crystal structure solution from X-ray powder diffraction.

The method follows Zaloga, Stanovov, Bezrukova, Dubinin & Yakimov, J. Sib. Fed. Univ. Chem. 12 (2019) 188-200:
a multipopulation real-coded genetic algorithm scored by a full-profile Rietveld calculation, with a
convolutional network that recognises correctly placed atoms from the difference profile.
"""

from gasolve.threads import set_thread_defaults

set_thread_defaults()

__version__ = "0.1.0"
