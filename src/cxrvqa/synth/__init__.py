"""Synthetic corpora (`cxrvqa synth`): radiology reports with their known scene graphs, and matching DICOMs.

For scale tests and benchmarks, and as a second gold standard for extraction: the generator knows
what every report says, so an extractor can be scored on it (`cxrvqa.synth.score`).
"""
