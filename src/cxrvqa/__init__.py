"""cxrvqa: build validated, auditable chest X-ray VQA datasets from DICOM images and reports."""

__version__ = "0.1.0"
