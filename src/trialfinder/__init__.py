"""trialfinder: find the clinical-trial site a patient can actually reach."""

__version__ = "0.1.0"
