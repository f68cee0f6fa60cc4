"""Powder diffraction physics: wavelengths, reflections, form factors, intensities, profiles, background."""
