"""INT8: one calibration set, one cached range file, the fastest INT8 form per backend, an mAP gate."""
