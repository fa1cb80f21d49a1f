"""ich-ray: head-CT DICOM to trained ICH detectors on Ray."""
__version__ = "0.1.0"
